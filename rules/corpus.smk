SOURCES = {s["name"]: s for s in config["corpus"]["sources"]}


wildcard_constraints:
    source="|".join(SOURCES),


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


rule download:
    input:
        code=lib("corpus"),
    output:
        "results/downloads/{source}.{ext}",
    log:
        "results/logs/download/{source}.{ext}.log",
    retries: 1
    conda:
        "../envs/corpus.yaml"
    params:
        url=lambda wc: SOURCES[wc.source]["url"],
        sha256=lambda wc: SOURCES[wc.source].get("sha256"),
        timeout=config["corpus"]["download"]["timeout"],
        retries=config["corpus"]["download"]["retries"],
    script:
        "../scripts/download.py"


rule corpus:
    input:
        unpack(lambda wc: {f"src_{n}": source_file(n) for n in SOURCES}),
        code=lib("corpus"),
    output:
        table="results/corpus/corpus.parquet",
        stats="results/corpus/stats.json",
        html=report(
            "results/corpus/stats.html",
            caption="../report/corpus_stats.rst",
            category="Corpus",
            labels={"table": "sources and cleaning"},
        ),
    log:
        "results/logs/corpus.log",
    conda:
        "../envs/corpus.yaml"
    params:
        sources=config["corpus"]["sources"],
        required=required_columns(),
        dedupe_on=config["corpus"]["dedupe_on"],
        normalize=config["corpus"]["normalize"],
        max_rows=config["corpus"]["max_rows"],
    script:
        "../scripts/corpus.py"
