# MeCab word statistics of corpus columns (results/mecab/{column}/).


rule mecab_stats:
    input:
        corpus="results/corpus/corpus.parquet",
        code=modules_of("mecab_stats.py"),
    output:
        stats="results/mecab/{column}/stats.json",
        stats_html=report(
            "results/mecab/{column}/stats.html",
            caption="../report/mecab_stats.rst",
            category="Tokens",
            subcategory="MeCab {column}",
            labels={"column": "{column}", "table": "statistics"},
        ),
        top_html=report(
            "results/mecab/{column}/top_words.html",
            caption="../report/mecab_top.rst",
            category="Tokens",
            subcategory="MeCab {column}",
            labels={"column": "{column}", "table": "frequent words"},
        ),
        pos_html=report(
            "results/mecab/{column}/pos.html",
            caption="../report/mecab_pos.rst",
            category="Tokens",
            subcategory="MeCab {column}",
            labels={"column": "{column}", "table": "parts of speech"},
        ),
    log:
        "results/logs/mecab/{column}.log",
    conda:
        "../envs/corpus.yaml"
    params:
        dictionary=config["mecab"]["dictionary"],
        top_n=config["mecab"]["top_n"],
    script:
        "../scripts/mecab_stats.py"
