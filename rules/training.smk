# A WordPiece vocabulary over MeCab words and MLM training (results/training/{run}/).


rule train_vocab:
    input:
        corpus="results/corpus/corpus.parquet",
        code=modules_of("train_vocab.py"),
    output:
        vocab="results/training/{run}/vocab/vocab.txt",
        config="results/training/{run}/vocab/tokenizer_config.json",
        stats="results/training/{run}/vocab/stats.json",
        html=report(
            "results/training/{run}/vocab/stats.html",
            caption="../report/vocab.rst",
            category="Training",
            subcategory="{run}",
            labels={"run": "{run}", "table": "vocabulary"},
        ),
    log:
        "results/logs/train_vocab/{run}.log",
    benchmark:
        "results/benchmarks/train_vocab/{run}.tsv"
    conda:
        "../envs/torch.yaml"
    params:
        vocab=lambda wc: TRAINING[wc.run]["vocab"],
        column=lambda wc: TRAINING[wc.run]["column"],
    script:
        "../scripts/train_vocab.py"


rule train_mlm:
    input:
        unpack(training_mlm_inputs),
        code=modules_of("train_mlm.py"),
    output:
        model=directory("results/training/{run}/model"),
        metrics="results/training/{run}/metrics.csv",
        tensorboard=directory("results/training/{run}/tensorboard"),
        summary="results/training/{run}/summary.json",
        curves=report(
            "results/training/{run}/curves.png",
            caption="../report/training_curves.rst",
            category="Training",
            subcategory="{run}",
            labels={"run": "{run}", "figure": "learning curves"},
        ),
        html=report(
            "results/training/{run}/summary.html",
            caption="../report/training_summary.rst",
            category="Training",
            subcategory="{run}",
            labels={"run": "{run}", "table": "summary"},
        ),
    log:
        "results/logs/train_mlm/{run}.log",
    benchmark:
        "results/benchmarks/train_mlm/{run}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: stage_threads("train")
    resources:
        # a run with `devices: N` > 1 runs under torchrun on N GPUs (the SLURM plugin asks for N)
        gpu=lambda wc: training_gpus(wc.run, default=gpu_resources("train")),
    params:
        run=lambda wc: TRAINING[wc.run],
        base_model=training_base_model,
        device=config["device"],
        # not an output: a killed job leaves its checkpoints here and the rerun resumes
        checkpoint_dir=lambda wc: f"results/training/{wc.run}/checkpoints",
    script:
        "../scripts/train_mlm.py"
