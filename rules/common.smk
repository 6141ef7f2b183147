import sys
from pathlib import Path

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

# scripts/ holds the stage scripts and the importable `bertlens` package they call.
SCRIPTS = Path(workflow.basedir) / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from bertlens.config import check_config  # noqa: E402

check_config(config)

MODELS = {m["name"]: m for m in config["models"]}
TRAINING = {k: v for k, v in config.get("training", {}).items() if v is not None}


wildcard_constraints:
    model="|".join(MODELS) or "NO_MODEL",
    run="|".join(TRAINING) or "NO_RUN",
    column="[A-Za-z_]+",


def lib(*modules):
    """The bertlens modules a rule's script imports: listed as inputs so that editing them
    reruns the rule (Snakemake's code trigger watches only the script file itself)."""
    return [
        str(SCRIPTS / "bertlens" / f"{m}.py")
        for m in ("__init__", "io", "stage", *modules)
    ]


def model_entry(wildcards):
    return MODELS[wildcards.model]


def trained_dir(run):
    return f"results/training/{run}/model"


def model_files(wildcards):
    """Inputs a model stage needs besides the corpus: the trained model folder for `trained:`
    models; nothing for hub, package and path models."""
    entry = MODELS[wildcards.model]
    if entry.get("trained"):
        return {"model_dir": trained_dir(entry["trained"])}
    return {}


def model_params(wildcards):
    """The model's config entry: the only model values a model stage's params carry."""
    return MODELS[wildcards.model]


def stage_threads(name):
    return config.get("threads", {}).get(name, 2)


def gpu_resources(name):
    """GPU rules ask for `gpu` from the config (default 1): `--resources gpu=1` caps concurrent GPU
    jobs locally; cluster profiles turn it into a real GPU request."""
    return config.get("resources", {}).get(name, {}).get("gpu", 1)


def all_outputs():
    out = [
        "results/corpus/corpus.parquet",
        "results/corpus/stats.html",
    ]
    out += expand(
        "results/mecab/{column}/stats.json", column=config["mecab"]["columns"]
    )
    for name in MODELS:
        out += [
            f"results/tokens/{name}/stats.html",
            *(
                f"results/plots/{name}/vocab_{m}.png"
                for m in config["projection"]["vocab"]["methods"]
            ),
            f"results/plots/{name}/vocab.html",
            f"results/plots/{name}/sentences.png",
            f"results/plots/{name}/sentences.html",
        ]
    return out
