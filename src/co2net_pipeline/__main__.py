"""`python -m co2net_pipeline` (and the `co2net-pipeline` script) runs the project like
`kedro run`, with the same options, from the project folder."""

import sys
from pathlib import Path

from kedro.framework.project import configure_project


def main(*args, **kwargs):
    from co2net_pipeline.common.telemetry import telemetry_off

    telemetry_off()  # before the session loads Kedro's telemetry hook and MLflow
    from kedro.utils import find_kedro_project

    if find_kedro_project(Path.cwd()) is None:
        sys.exit(f"Error: {Path.cwd()} is not in a Kedro project; run this from the project folder")
    package_name = Path(__file__).parent.name
    configure_project(package_name)
    # Kedro's `run` as `kedro run` gives it here (one-line errors: `kedro_glue.run_command`)
    from co2net_pipeline.kedro_glue.run_command import project_run_command

    run = project_run_command()

    kwargs.setdefault("standalone_mode", not hasattr(sys, "ps1"))
    return run(*args, **kwargs)


if __name__ == "__main__":
    sys.exit(main())
