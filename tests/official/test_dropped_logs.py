"""official.utils.logs.dropped: only the matching records go, only inside
the block, and no logger's level changes."""

import logging

from official.utils.logs import dropped


def test_drops_matching_records_inside_the_block_only(caplog):
    logger = logging.getLogger("absl")
    level = logger.level
    caplog.set_level("INFO")
    with dropped.dropped(r"^Variant folder .* has no dataset_info"):
        logger.warning("Variant folder /x/food101/2.0.0 has no dataset_info")
        logger.warning("Something else")
    logger.warning("Variant folder /y has no dataset_info.json")
    assert [r.getMessage() for r in caplog.records] == [
        "Something else",
        "Variant folder /y has no dataset_info.json",
    ]
    assert logger.level == level and not logger.filters
