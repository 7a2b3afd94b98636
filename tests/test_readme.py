"""README's two commands are what CI runs, verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.+?)\n```", section, re.DOTALL)
    assert len(commands) == 2, "README's 'Two commands' section holds exactly two bash blocks"
    ci_lines = {line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()}
    for command in commands:
        assert command.strip() in ci_lines, f"CI does not run README's command: {command}"


def test_readme_configuration_block_is_valid() -> None:
    """The TOML shown under 'Configuration' loads into Settings (every section and key exists)."""
    import tomllib

    from pipeline.config import Settings

    section = (ROOT / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```toml\n(.+?)\n```", section, re.DOTALL)
    assert block is not None
    settings = Settings(**tomllib.loads(block.group(1)))
    assert settings.train.lora.targets == ["q_proj", "k_proj", "v_proj"]
    assert settings.train.remote.base_url == "https://api.together.xyz/v1"
