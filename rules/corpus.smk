# Corpus sources (downloaded when they have a url) read into one table (results/corpus/).


rule download:
    input:
        code=modules_of("download.py"),
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
        deadline=config["corpus"]["download"]["deadline"],
    script:
        "../scripts/download.py"


rule corpus:
    input:
        unpack(lambda wc: {f"src_{n}": source_file(n) for n in SOURCES}),
        code=modules_of("corpus.py"),
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
        uses=corpus_uses(),
        dedupe_on=config["corpus"]["dedupe_on"],
        normalize=config["corpus"]["normalize"],
        max_rows=config["corpus"]["max_rows"],
    script:
        "../scripts/corpus.py"
