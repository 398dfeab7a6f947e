"""official.utils.logs.logger: run information and table numbers."""


def test_table_numbers_have_no_exponent():
    """Before: 1,058 images/s were written "1.06e+03" in benchmark.md."""
    from assemble_tf.export import throughput
    from assemble_tf.training import benchmark
    from official.utils.logs.logger import table_number

    assert [table_number(v) for v in (1058.7, 12345.0, 999.4, 12.34)] == [
        "1059",
        "12345",
        "999",
        "12.3",
    ]
    assert table_number(0.0123) == "0.0123"
    assert throughput._cell(1058.7) == benchmark._cell(1058.7) == "1059"
    assert benchmark._cell([1040.2, 1077.9]) == "1040-1078"
