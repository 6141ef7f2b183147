"""Download one corpus source (streamed, verified, cached as a declared output)."""

from bertlens.corpus import download
from bertlens.io import write_sidecar
from bertlens.stage import run


def main(sm):
    facts = download(
        sm.params.url,
        sm.output[0],
        sha256=sm.params.sha256,
        fmt=sm.wildcards.ext,
        timeout=sm.params.timeout,
        retries=sm.params.retries,
        deadline=sm.params.deadline,
    )
    write_sidecar(sm.output[0], **facts)


run(snakemake, main)
