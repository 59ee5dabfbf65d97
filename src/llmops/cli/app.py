"""The `llmops` Typer app: every command module registers its commands here, in `--help` order."""

from __future__ import annotations

import typer

from llmops.cli import data, deploy, evaluate, kfp, mine_pairs, prune, quickstart, run, serve
from llmops.cli.common import STATE

app = typer.Typer(
    name="llmops",
    help="Fine-tune, evaluate, gate, register and serve LLMs for document extraction (IDP) and code generation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="show Python tracebacks on errors")) -> None:
    STATE["debug"] = debug


run.register(app)
quickstart.register(app)
evaluate.register(app)
app.add_typer(data.data_app, name="data")
serve.register(app)
prune.register(app)
mine_pairs.register(app)
app.add_typer(kfp.kfp_app, name="kfp")
app.add_typer(deploy.deploy_app, name="deploy")


def main() -> None:
    """Console entry point."""
    app(prog_name="llmops")
