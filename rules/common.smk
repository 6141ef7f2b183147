import sys
from pathlib import Path

from snakemake.utils import validate

# A training run set to null in a config file layered over config.yaml is switched off.
if isinstance(config.get("training"), dict):
    config["training"] = {k: v for k, v in config["training"].items() if v is not None}

validate(config, schema="../schemas/config.schema.yaml")

# scripts/ holds the stage scripts and the importable `bertlens` package they call.
SCRIPTS = Path(workflow.basedir) / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from bertlens.config import canonical, check_config  # noqa: E402
from bertlens.imports import reached_modules  # noqa: E402

from bertlens.models import check_pooler_poolings  # noqa: E402

check_config(config)
# pooler pooling asked for a model that has none: a config error before any job
check_pooler_poolings(config)
# Keys sorted at every level: Snakemake compares params by their text, so reordering keys in a
# config file must not look like a change.
config.update(canonical(config))

MODELS = {m["name"]: m for m in config["models"]}
TRAINING = {k: v for k, v in config.get("training", {}).items() if v is not None}


SOURCES = {s["name"]: s for s in config["corpus"]["sources"]}


wildcard_constraints:
    source="|".join(SOURCES),
    model="|".join(MODELS) or "NO_MODEL",
    run="|".join(TRAINING) or "NO_RUN",
    column="[A-Za-z_]+",


# Light stages stay on the submitting (login) node when running on a cluster.
localrules:
    all,
    download,
    corpus,
    mecab_stats,
    plot_vocab_png,
    plot_sentences_png,
    explore_vocab,
    explore_sentences,
    attention_png,
    attention_page,
    compare,
    export_projector,


def source_file(name):
    """The local file of a corpus source: its path, or the cached download of its url."""
    src = SOURCES[name]
    if src.get("url"):
        return f"results/downloads/{name}.{corpus_format(src)}"
    return src["path"]


def corpus_format(src):
    from bertlens.corpus import source_format

    return source_format(src)


def required_columns():
    cols = [m["column"] for m in config["models"]]
    cols += config["mecab"]["columns"]
    cols += [t["column"] for t in config.get("training", {}).values()]
    return sorted(set(cols))


def corpus_uses():
    """What reads the corpus, by label, and the column each reads: the corpus stats count its
    rows, and a use without rows stops the corpus stage."""
    uses = {f"model '{m['name']}'": m["column"] for m in config["models"]}
    uses |= {f"MeCab statistics of '{c}'": c for c in config["mecab"]["columns"]}
    uses |= {f"training run '{r}'": t["column"] for r, t in TRAINING.items()}
    return uses


def modules_of(script):
    """The modules under scripts/ that a rule's script reaches through its imports, followed
    transitively (`bertlens.imports`): the rule's `code` input, so that editing one reruns the
    rules whose scripts use it (Snakemake's code trigger watches only the script itself).
    """
    return reached_modules(SCRIPTS / script)


def trained_dir(run):
    return f"results/training/{run}/model"


def model_files(wildcards):
    """Inputs a model stage needs besides the corpus: the trained model folder for `trained:`
    models, the files of a `path:` folder (re-saving the model reruns its stages); nothing for
    hub and package models."""
    entry = MODELS[wildcards.model]
    if entry.get("trained"):
        return {"model_dir": trained_dir(entry["trained"])}
    if entry.get("path"):
        from bertlens.models import folder_files

        files = folder_files(entry["path"])
        return {"model_files": files} if files else {}
    return {}


def model_params(wildcards):
    """The model's config entry: the only model values a model stage's params carry."""
    return MODELS[wildcards.model]


def projection_inputs(wildcards):
    """What one map reads: the input matrix and its token table (vocab), or the corpus, the
    token lengths and the sentence vectors with their facts (sentences), so that the embeddings
    settings rerun only the sentence maps."""
    emb = f"results/embeddings/{wildcards.model}"
    if wildcards.target == "vocab":
        return {"vocab": f"{emb}/vocab.npy", "vocab_table": f"{emb}/vocab.parquet"}
    return {
        "corpus": "results/corpus/corpus.parquet",
        "tokens": f"results/tokens/{wildcards.model}/tokens.parquet",
        **{f"sent_{p}": f"{emb}/sentences_{p}.npy" for p in ("cls", "mean", "pooler")},
        "facts": f"{emb}/facts.json",
    }


def stage_threads(name):
    """Threads of a heavy stage: `threads.<name>` from the config when set; else every core the
    run was given (`--cores`, at least 2), so that locally the heavy stages run one at a time on
    all cores instead of several at once on the same cores (a job never starts more threads than
    its machine has: `bertlens.stage.configure_threads`). A cluster run's main process has 1
    core: its jobs get 2 threads unless the config says otherwise."""
    return config.get("threads", {}).get(name) or max(
        2, workflow.resource_settings.cores or 1
    )


def gpu_resources(name):
    """GPU rules ask for `gpu` from the config (default 1): `--resources gpu=1` caps concurrent GPU
    jobs locally; cluster profiles turn it into a real GPU request."""
    return config.get("resources", {}).get(name, {}).get("gpu", 1)


def training_gpus(run, default):
    """A training run with `devices: N` > 1 asks for N GPUs (torchrun, one process each);
    otherwise the `train` stage's `gpu` (default 1)."""
    devices = TRAINING[run]["devices"]
    return devices if devices > 1 else default


def training_mlm_inputs(wildcards):
    """A run's inputs besides the code: the corpus, plus its trained vocabulary (scratch runs
    without a base model) or the base model folder when that model is itself trained here.
    """
    entry = TRAINING[wildcards.run]
    inputs = {"corpus": "results/corpus/corpus.parquet"}
    if entry.get("base_model"):
        base = MODELS[entry["base_model"]]
        if base.get("trained"):
            inputs["base_model_dir"] = trained_dir(base["trained"])
        elif base.get("path"):
            from bertlens.models import folder_files

            if folder_files(base["path"]):
                inputs["base_model_files"] = folder_files(base["path"])
    else:
        inputs["vocab"] = f"results/training/{wildcards.run}/vocab/vocab.txt"
    return inputs


def training_base_model(wildcards):
    """The `models:` entry a run starts from (its weights for init: pretrained, its config and
    tokenizer for init: scratch); None for a scratch run with its own vocabulary."""
    name = TRAINING[wildcards.run].get("base_model")
    return MODELS.get(name) if name else None


def all_outputs():
    out = [
        "results/corpus/corpus.parquet",
        "results/corpus/stats.html",
    ]
    out += expand(
        "results/mecab/{column}/stats.json", column=config["mecab"]["columns"]
    )
    for run, entry in TRAINING.items():
        out += [
            f"results/training/{run}/summary.html",
            f"results/training/{run}/curves.png",
        ]
        if not entry.get("base_model"):
            out.append(f"results/training/{run}/vocab/stats.html")
    for name in MODELS:
        out += [
            f"results/fill_mask/{name}.html",
            f"results/padding/{name}/verdict.html",
            f"results/padding/{name}/summary.html",
            f"results/padding/{name}/histograms.png",
            f"results/padding/{name}/growth.png",
            f"results/internals/{name}/checks.html",
            f"results/internals/{name}/parameters.html",
            f"results/tokens/{name}/stats.html",
            *(
                f"results/plots/{name}/vocab_{m}.png"
                for m in config["projection"]["vocab"]["methods"]
            ),
            f"results/plots/{name}/sentences.png",
        ]
    out += explore_outputs()
    out += layer_outputs()
    if config["export"]["projector"]:
        out += [f"results/export/{name}" for name in MODELS]
    return out


def explore_pairs():
    """Pairs of models that read the same corpus column (in config order), for the comparison
    pages; none when explore.compare is off."""
    if not config["explore"]["compare"]:
        return []
    names = list(MODELS)
    return [
        (a, b)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if MODELS[a]["column"] == MODELS[b]["column"]
    ]


def explore_outputs():
    """Explorer pages and probe tables of every model, the attention view of models whose
    column has probe sentences, and the comparison of every same-column pair."""
    out = []
    probes = config["explore"]["probes"]["sentences"]
    for name, entry in MODELS.items():
        out += [
            f"results/explore/{name}/vocab.html",
            f"results/explore/{name}/sentences.html",
            f"results/neighbors/{name}/probe_tokens.html",
            f"results/neighbors/{name}/probe_sentences.html",
            f"results/neighbors/{name}/knn.html",
        ]
        n_probes = len(probes.get(entry["column"], []))
        if n_probes:
            out.append(f"results/attention/{name}/attention.html")
            out += [
                f"results/attention/{name}/probe{i}.png" for i in range(1, n_probes + 1)
            ]
    for a, b in explore_pairs():
        out += [
            f"results/compare/{a}_vs_{b}/{f}"
            for f in ("overlap.html", "overlap.png", "side_by_side.html")
        ]
    return out


def layer_training(wildcards):
    """Seed and held-out share of the run that trained the model (its held-out sentences feed
    the logit lens); None for models not trained here."""
    run = MODELS[wildcards.model].get("trained")
    if not run:
        return None
    return {k: TRAINING[run][k] for k in ("seed", "eval_fraction")}


def layer_settings(*keys):
    """The `layers:` values one layer stage reads: editing another reruns nothing there."""
    return {k: config["layers"][k] for k in keys}


def column_models(column):
    return [m for m, e in MODELS.items() if e["column"] == column]


def layer_outputs():
    """The Layers chapter: every model's tables and figures, the overlaid curves of every corpus
    column, and CKA between every pair of models on the same column."""
    out = []
    for name in MODELS:
        out += [
            f"results/layers/{name}/{f}"
            for f in (
                "measures.html",
                "cka.png",
                "probes.html",
                "probes.png",
                "logit_lens.html",
                "logit_lens.png",
            )
        ]
    for column in sorted({e["column"] for e in MODELS.values()}):
        out.append(f"results/layers/column_{column}/measures.html")
    names = list(MODELS)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if MODELS[a]["column"] == MODELS[b]["column"]:
                out.append(f"results/layers/{a}_vs_{b}/cka.png")
    return out
