"""Experimental APIs: they may change between releases."""
