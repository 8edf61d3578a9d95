# Paths shared by the rule files: one function per kind of stage output.


def model_manifest(stage):
    return f"{WORK}/models/{stage}/tinyrs_manifest.json"


def fetched(dataset):
    return f"{WORK}/hub/{dataset}/.complete"


def hub_dir(dataset):
    return f"{WORK}/hub/{dataset}"


def list_manifest(name):
    return f"{WORK}/data/{name}/manifest.parquet"


def settings_file(name):
    return f"{SETTINGS}/{name}.json"


def eval_metrics(stage, task):
    return f"{WORK}/eval/{stage}/{task}.metrics.json"


def report_outputs():
    return [f"{WORK}/report/results.md", f"{WORK}/report/results.csv", f"{WORK}/report/results.parquet"]


def log_file(name):
    return f"{WORK}/logs/{name}.log"
