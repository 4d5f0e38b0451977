"""import_table: Arrow types, conversions, names, sizes, against the real server."""

from __future__ import annotations

import decimal

import numpy as np
import pyarrow as pa
import pytest

from pydeephaven import DHError, _arrow
from tests.support.arrow_cases import CONVERTED, NATIVE

D = decimal.Decimal


def test_every_native_type_round_trips(session) -> None:
    data = pa.table(NATIVE)
    back = session.import_table(data).to_arrow()
    for name, arr in NATIVE.items():
        col = back.column(name)
        assert col.type == arr.type, name
        assert col.to_pylist() == arr.to_pylist(), name


def test_converted_types_keep_their_values(session) -> None:
    data = pa.table({k: v for k, (v, _) in CONVERTED.items()})
    back = session.import_table(data).to_arrow()
    for name, (arr, expected_type) in CONVERTED.items():
        col = back.column(name)
        assert col.type == expected_type, name
        assert col.to_pylist() == arr.to_pylist(), name


def test_structs_are_refused_naming_the_column(session) -> None:
    before = len(session.live_exports())
    with pytest.raises(DHError, match="column 'Bad'.*struct"):
        session.import_table(pa.table({"Ok": [1, 2], "Bad": pa.array([{"x": 1}, None])}))
    assert len(session.live_exports()) == before


def test_maps_round_trip(session) -> None:
    n = 1000  # more entries than rows: the server's answer describes the entries wrongly, to_arrow mends it
    maps = {
        "M": pa.array([{"a": 1, "b": 2}, {"c": 3}], pa.map_(pa.string(), pa.int32())),
        "Big": pa.MapArray.from_arrays(pa.array([0, 1, n], pa.int32()), pa.array([f"k{i}" for i in range(n)]),
                                       pa.array(np.arange(n, dtype=np.int64))),
        "Nested": pa.array([[("x", [1, None])], []], pa.map_(pa.string(), pa.list_(pa.int16()))),
        "Large": pa.array([[("p", "q")], [("r", None)]], pa.map_(pa.large_string(), pa.large_string())),
    }
    for name, arr in maps.items():
        back = session.import_table(pa.table({name: arr})).to_arrow().column(name).combine_chunks()
        back.validate(full=True)
        expected = arr.cast(pa.map_(pa.string(), pa.string())) if name == "Large" else arr
        assert back.equals(expected), name


def test_map_values_and_keys_the_server_would_change_are_refused(session) -> None:
    with pytest.raises(DHError, match="column 'M' \\(a map value\\).*null"):
        session.import_table(pa.table({"M": pa.array([[("a", -(2**31))]], pa.map_(pa.string(), pa.int32()))}))
    key_3000 = pa.MapArray.from_arrays(pa.array([0, 1], pa.int32()), pa.array([32503680000000000], pa.timestamp("us")),
                                       pa.array([1], pa.int32()))
    with pytest.raises(DHError, match="column 'M' \\(a map key\\).*wrap"):
        session.import_table(pa.table({"M": key_3000}))
    # keys keep the values that mark nulls elsewhere
    keys = pa.MapArray.from_arrays(pa.array([0, 1, 2], pa.int32()), pa.array([-(2**63), 5]),
                                   pa.array([1, 2], pa.int32()))
    assert session.import_table(pa.table({"M": keys})).to_arrow().column("M").combine_chunks().equals(keys)
    with pytest.raises(DHError, match="column 'M'.*key 'a' more than once"):
        session.import_table(pa.table({"M": pa.array([[("a", 1), ("a", 2)]], pa.map_(pa.string(), pa.int32()))}))


@pytest.mark.parametrize("name", ["has space", "1st", "class", "i", "ii", "k", "", "a-b", "_", "in", "not", "ç",
                                  "null", "non-sealed"])
def test_unusable_column_names_are_refused(session, name) -> None:
    with pytest.raises(DHError, match="column name"):
        session.import_table(pa.table({name: [1]}))


def test_contextual_keywords_are_usable_names(session) -> None:
    made = session.empty_table(2).update(["var = 5", "yield = var + 1", "record = yield * 2"]).to_arrow()
    back = session.import_table(made).to_arrow()
    assert back.column_names == ["var", "yield", "record"]
    assert back.column("record").to_pylist() == [12, 12]


# Candidates for column names: every reserved and contextual Java keyword, the literals, the formula
# language's own names, and odd but plausible identifiers.
NAME_CANDIDATES = sorted(set(_arrow._JAVA_WORDS) | {
    "var", "yield", "record", "sealed", "permits", "non-sealed", "module", "exports", "open", "opens", "requires",
    "transitive", "to", "with", "uses", "provides", "when", "_", "__", "_a", "a_", "$x", "$", "x$", "$1", "i", "ii",
    "k", "I", "II", "K", "in", "not", "and", "or", "is", "lambda", "def", "None", "True", "pass", "ç", "名前", "Δx",
    "µ", "abç", "a1", "1a", "a b", "a-b", "a.b", "Integer", "Math", "String", "isNull", "t", "x", "inn", "not_"})


def _server_takes(session, name: str) -> bool:
    try:
        t = session.import_table(pa.table({name: [1, 2]}))
        formula = t.update([f"Y = {name} + 1"]).to_arrow()
        back = t.to_arrow()
    except DHError:
        return False
    return formula.column("Y").to_pylist() == [2, 3] and back.column_names == [name]


def test_column_name_rule_matches_the_server(session, monkeypatch) -> None:
    def ours(name: str) -> bool:
        try:
            _arrow.check_column_name(name)
        except DHError:
            return False
        return True

    verdicts = {name: ours(name) for name in NAME_CANDIDATES}
    monkeypatch.setattr(_arrow, "check_column_name", lambda name: None)
    differ = {name: ("client takes" if mine else "client refuses")
              for name, mine in verdicts.items() if _server_takes(session, name) != mine}
    assert not differ, differ
    assert verdicts["var"] and not verdicts["_"] and not verdicts["in"]


def test_usable_odd_names(session) -> None:
    back = session.import_table(pa.table({"_x$1": [1], "Klass": [2]})).to_arrow()
    assert back.column_names == ["_x$1", "Klass"]


@pytest.mark.parametrize("arr", [
    pa.array([1, -(2**63)], pa.int64()), pa.array([-(2**31), 1], pa.int32()), pa.array([-128], pa.int8()),
    pa.array([65535], pa.uint16()), pa.array([-1.7976931348623157e308], pa.float64()),
    pa.array([[1], [-(2**15)]], pa.list_(pa.int16())),
], ids=["i64", "i32", "i8", "u16", "f64", "list_i16"])
def test_values_the_server_would_turn_into_nulls_are_refused(session, arr) -> None:
    with pytest.raises(DHError, match="column 'V'.*null"):
        session.import_table(pa.table({"V": arr}))


def test_zero_rows(session) -> None:
    t = session.import_table(pa.table({"A": pa.array([], pa.int64()), "S": pa.array([], pa.string())}))
    assert t.size == 0
    back = t.to_arrow()
    assert back.num_rows == 0 and back.column_names == ["A", "S"]


def test_record_batch_and_reader(session) -> None:
    batch = pa.record_batch({"A": [1, 2, 3]})
    assert session.import_table(batch).to_arrow().column("A").to_pylist() == [1, 2, 3]
    parts = [pa.record_batch({"A": list(range(i * 10, i * 10 + 10))}) for i in range(5)]
    reader = pa.RecordBatchReader.from_batches(parts[0].schema, iter(parts))
    t = session.import_table(reader)
    assert t.size == 50
    assert t.to_arrow().column("A").to_pylist() == list(range(50))


def test_not_arrow_is_refused(session) -> None:
    with pytest.raises(DHError, match="pyarrow"):
        session.import_table({"A": [1]})


def test_pandas_frames_import(session) -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"Cat": pd.Categorical(["a", "b", "a"]), "N": [1.0, 2.0, None],
                       "S": pd.array(["x", None, "z"], dtype="string")})
    back = session.import_table(pa.Table.from_pandas(df, preserve_index=False)).to_arrow()
    assert back.column("Cat").to_pylist() == ["a", "b", "a"]
    assert back.column("N").to_pylist()[:2] == [1.0, 2.0]
    assert back.column("S").to_pylist() == ["x", None, "z"]


def test_many_batches_over_the_message_limit(session) -> None:
    n = 9_000_000  # 3 columns of 8 bytes: 216 MB, over twice the server's 100 MiB message limit
    data = pa.table({"A": np.arange(n, dtype=np.int64), "B": np.arange(n, dtype=np.float64) / 2,
                     "C": np.arange(n, dtype=np.int64) * -1})
    t = session.import_table(data)
    assert t.size == n
    back = t.to_arrow()
    assert back.column("A").equals(data.column("A"))
    assert back.column("C").equals(data.column("C"))
    t.close()


def test_one_gigabyte(session) -> None:
    n = 45_000_000  # 3 columns of 8 bytes: 1.08 GB
    a = np.arange(n, dtype=np.int64)
    data = pa.table({"A": a, "B": a.astype(np.float64) * 0.5, "C": a[::-1].copy()})
    assert data.nbytes >= 1_000_000_000
    t = session.import_table(data)
    assert t.size == n
    back = t.to_arrow()
    t.close()
    for name in ("A", "B", "C"):
        assert back.column(name).equals(data.column(name)), name


def test_a_refused_upload_is_an_error_not_a_table(session) -> None:
    # one row cannot be split: a 110 MB value makes a message the server refuses
    huge = pa.table({"S": pa.array(["x" * (110 * 1024 * 1024)])})
    with pytest.raises(DHError, match="import_table"):
        session.import_table(huge)
    assert session.empty_table(1).size == 1  # the session stays usable


def test_parallel_upload_keeps_order_and_reports_errors(session) -> None:
    n = 1_000_003
    data = pa.table({"A": np.arange(n, dtype=np.int64),
                     "S": pa.array([str(i % 11) for i in range(n)], pa.large_string())})
    session.put_streams, session.parallel_put_bytes = 3, 1
    try:
        assert session._streams_for_put(data) == 3
        before = len(session.live_exports())
        t = session.import_table(data)
        assert t.size == n
        back = t.to_arrow()
        assert back.column("A").equals(data.column("A"))
        assert back.column("S").to_pylist()[-5:] == data.column("S").to_pylist()[-5:]
        t.close()
        # a bad value in the last slice only: the whole import fails and nothing stays behind
        bad = pa.table({"A": pa.array(list(range(n - 1)) + [-(2**63)], pa.int64())})
        with pytest.raises(DHError, match="column 'A'"):
            session.import_table(bad)
        assert len(session.live_exports()) == before
    finally:
        session.put_streams, session.parallel_put_bytes = 4, 64 * 1024 * 1024
