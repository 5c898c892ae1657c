"""The README's pictures of the key pages, taken by the browser tests that check those pages,
so they stay current: `TOXPLATFORM_README_PICTURES=docs/images bash scripts/test.sh
tests/browser` rewrites them; otherwise nothing is written."""
import os
from pathlib import Path


def readme_picture(page, name: str, *, full_page: bool = True) -> None:
    folder = os.environ.get("TOXPLATFORM_README_PICTURES")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=full_page)
