# Token ids, lengths and tokenizer statistics of one model's corpus column
# (results/tokens/{model}/).


rule tokenize:
    input:
        unpack(model_files),
        corpus="results/corpus/corpus.parquet",
        code=modules_of("tokenize_corpus.py"),
    output:
        tokens="results/tokens/{model}/tokens.parquet",
        stats="results/tokens/{model}/stats.json",
        top_csv="results/tokens/{model}/top_tokens.csv",
        subwords_csv="results/tokens/{model}/subwords.csv",
        stats_html=report(
            "results/tokens/{model}/stats.html",
            caption="../report/token_stats.rst",
            category="Tokens",
            subcategory="{model}",
            labels={"model": "{model}", "table": "statistics"},
        ),
        hist=report(
            "results/tokens/{model}/length_hist.png",
            caption="../report/token_lengths.rst",
            category="Tokens",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "sentence lengths"},
        ),
        top_html=report(
            "results/tokens/{model}/top_tokens.html",
            caption="../report/token_top.rst",
            category="Tokens",
            subcategory="{model}",
            labels={"model": "{model}", "table": "frequent tokens"},
        ),
        subwords_html=report(
            "results/tokens/{model}/subwords.html",
            caption="../report/token_subwords.rst",
            category="Tokens",
            subcategory="{model}",
            labels={"model": "{model}", "table": "subword splits"},
        ),
    log:
        "results/logs/tokenize/{model}.log",
    conda:
        "../envs/torch.yaml"
    params:
        model=model_params,
        max_unk_rate=config["tokens"]["max_unk_rate"],
    script:
        "../scripts/tokenize_corpus.py"
