"""What a person would check on every page: a screenshot to look at, no sideways
scrolling, touch targets a finger can hit, and no request leaving EvalSign."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, Request

# Every visible control, and how small it is, if it is under 44 CSS px either way.
SMALL_TARGETS_JS = """() => [...document.querySelectorAll('button, a, input, textarea, select')]
  .filter((node) => node.offsetParent !== null && node.type !== 'hidden')
  .map((node) => ({ node: node.outerHTML.slice(0, 80), box: node.getBoundingClientRect() }))
  .filter(({ node, box }) => !node.startsWith('<input type="checkbox"'))
  .filter(({ box }) => box.height < 44 || box.width < 44)
  .map(({ node, box }) => `${node} ${Math.round(box.width)}x${Math.round(box.height)}`)"""


def look(page: Page, folder: Path, name: str) -> Path:
    """Screenshot the page (whole length) and check its layout as a phone shows it."""
    page.wait_for_load_state("networkidle")
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name}: the page scrolls sideways by {overflow} px"
    small = page.evaluate(SMALL_TARGETS_JS)
    assert not small, f"{name}: touch targets under 44 px: {small}"
    return path


class RequestLog:
    """Every URL the page asks for; all must be EvalSign's own."""

    def __init__(self, page: Page, base: str) -> None:
        self.base = base
        self.urls: list[str] = []
        page.on("request", self._seen)

    def _seen(self, request: Request) -> None:
        self.urls.append(request.url)

    def foreign(self) -> list[str]:
        own = (self.base, "data:", "blob:")
        return [url for url in self.urls if not url.startswith(own)]
