"""Where the repository and the tests' recorded data are, wherever a test module sits."""

from pathlib import Path

#: The repository root (pyproject.toml, README.md, data_catalog/).
REPO = Path(__file__).resolve().parents[2]
#: Real recordings and files from elsewhere copied into the project, each with its ORIGIN.md.
DATA = REPO / "ace_assets_tests" / "data"
README = REPO / "README.md"
TEMPLATES = REPO / "data_catalog" / "templates"
