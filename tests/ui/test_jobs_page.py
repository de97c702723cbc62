"""The jobs page's handlers, called directly (no browser): numbers out of the API's ranges are refused."""

from __future__ import annotations

import pytest

from ui import jobs_page

SINGLE = jobs_page.SOURCES[2]
OUT_OF_RANGE = [  # (version, concurrency, rate), what the status line names
    ((2**31, 2, None), "Version '2147483648' is not a whole number from 1 to 2147483647"),
    ((-1, 2, None), "Version '-1' is not a whole number from 1 to 2147483647"),
    (("abc", 2, None), "Version 'abc' is not a whole number"),
    ((None, 2**31, None), "Concurrency '2147483648' is not a whole number from 1 to 1000"),
    ((None, -1, None), "Concurrency '-1' is not a whole number from 1 to 1000"),
    ((None, 1001, None), "Concurrency '1001' is not a whole number from 1 to 1000"),
    ((None, "abc", None), "Concurrency 'abc' is not a whole number from 1 to 1000"),
    ((None, 2.5, None), "Concurrency '2.5' is not a whole number"),
    ((None, 2, -1), "Rate limit '-1' is not a number above 0 and at most 100000"),
    ((None, 2, 100_001), "Rate limit '100001' is not a number above 0 and at most 100000"),
    ((None, 2, float("nan")), "Rate limit 'nan' is not a number above 0"),
]


@pytest.mark.parametrize(("numbers", "named"), OUT_OF_RANGE)
def test_a_number_out_of_range_is_refused_by_field_and_range(workflow, numbers, named):
    version, concurrency, rate = numbers
    status, table, job_id = jobs_page.create_job(workflow, version, "", SINGLE, None, "", '{"name": "Ada"}', "", "",
                                                 concurrency, rate)
    assert status.startswith(f"⚠️ {named}") and table == [] and job_id == ""
    status, table = jobs_page.create_schedule("nightly", "0 2 * * *", "UTC", workflow, version, SINGLE, None, "",
                                              '{"name": "Ada"}', "", "", concurrency, rate)
    assert status.startswith(f"⚠️ {named}") and table == []


def test_json_nested_too_deeply_is_refused_naming_the_field_and_the_limit(workflow):
    status, table, _ = jobs_page.create_job(workflow, None, "", SINGLE, None, "", "[" * 200_000, "", "", 2, None)
    assert status.startswith("⚠️ Inputs nests objects and arrays more than 64 levels deep") and table == []
