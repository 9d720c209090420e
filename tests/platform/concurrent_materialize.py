"""Run by test_concurrency in separate processes: materialize one asset into a shared warehouse."""

import sys
import time

import dagster as dg
import pandas as pd

from resources import default_resources

root, name, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])


@dg.asset(name=name, group_name="race")
def table() -> pd.DataFrame:
    return pd.DataFrame({"writer": [name] * 5, "i": range(5)})


for _ in range(repeats):
    result = dg.materialize([table], resources=default_resources(root))
    assert result.success
    time.sleep(0.01)
print("ok", name)
