"""A browser executor: Playwright actions, each one an Aegis action a policy can match.

Action types and what they do (``target`` is what a policy's ``target`` glob sees):

==============  =====================  =================================================
type            target                 params
==============  =====================  =================================================
``navigate``    the URL (http/https)   ``wait_until`` (load, domcontentloaded, networkidle)
``click``       a selector             —
``fill``        a selector             ``value`` (text)
``select``      a selector             ``value`` (one or a list) or ``label``
``screenshot``  ``page`` or a selector ``path`` (file under ``screenshot_dir``), ``full_page``
``evaluate``    ``page`` or a selector ``expression`` (JavaScript), ``arg``
==============  =====================  =================================================

JavaScript runs only through ``evaluate``, so a policy that blocks ``evaluate`` blocks all
script an agent could inject: ``navigate`` refuses ``javascript:``, ``data:`` and every scheme
but http/https (``allowed_schemes``), which would otherwise run script under another name. Type
names are matched exactly (no lower-casing), so a type the policy did not decide on can never
be mapped onto one it did. A screenshot's PNG bytes are the result's ``data["png"]``; it is
written to disk only under ``screenshot_dir`` (a ``path`` that leaves it, or any ``path`` when
no directory is configured, fails), so an agent cannot overwrite files with it. Anything the
executor cannot do ends as a FAILED result, not a guess.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Browser, Page, Playwright, async_playwright

from aegis import hookimpl
from aegis.adapters.base import BaseExecutor
from aegis.core.action import Action
from aegis.core.result import Result, ResultStatus
from aegis.hookspecs import Register

__all__ = ["PAGE_TARGETS", "PlaywrightExecutor"]

PAGE_TARGETS = frozenset({"page", "document"})  # targets meaning "the whole page"
QUIET_ARGS = ("--disable-background-networking", "--disable-component-update")


class PlaywrightExecutor(BaseExecutor):
    """Runs browser actions on one page of its own browser, launched from ``executable_path``.

    ``executable_path`` is the browser binary (Debian: ``/usr/bin/chromium``); None means
    Playwright's own download. The browser starts in ``setup()`` (the runtime calls it when
    entered) or at the first action, and closes in ``teardown()``.
    """

    def __init__(
        self,
        *,
        executable_path: str | None = None,
        headless: bool = True,
        args: Sequence[str] = QUIET_ARGS,
        timeout_ms: float = 10_000,
        allowed_schemes: Sequence[str] = ("http", "https"),
        screenshot_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.executable_path = executable_path
        self.headless = headless
        self.args = list(args)
        self.timeout_ms = timeout_ms
        self.allowed_schemes = frozenset(s.lower() for s in allowed_schemes)
        self.screenshot_dir = Path(screenshot_dir).resolve() if screenshot_dir else None
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._page: Page | None = None
        self._handlers: dict[str, Callable[[Page, Action], Awaitable[Any]]] = {
            "navigate": self._navigate,
            "click": self._click,
            "fill": self._fill,
            "select": self._select,
            "screenshot": self._screenshot,
            "evaluate": self._evaluate,
        }

    @property
    def page(self) -> Page:
        """The page actions run on (for reading state; acting on it directly is not governed)."""
        if self._page is None:
            raise RuntimeError("the browser is not started: enter the runtime or call setup()")
        return self._page

    async def setup(self) -> None:
        if self._page is not None:
            return
        self._playwright = await async_playwright().start()
        try:
            self._browser = await self._playwright.chromium.launch(
                executable_path=self.executable_path, headless=self.headless, args=self.args
            )
            page = await self._browser.new_page()
            page.set_default_timeout(self.timeout_ms)
            self._page = page
        except BaseException:
            await self.teardown()
            raise

    async def teardown(self) -> None:
        browser, playwright = self._browser, self._playwright
        self._page = self._browser = self._playwright = None
        try:
            if browser is not None:
                await browser.close()
        finally:
            if playwright is not None:
                await playwright.stop()

    async def execute(self, action: Action) -> Result:
        handler = self._handlers.get(action.type)
        if handler is None:
            known = ", ".join(self._handlers)
            return Result(
                action,
                ResultStatus.FAILED,
                error=f"unknown browser action {action.type!r} (known: {known})",
            )
        await self.setup()
        data = await handler(self.page, action)
        return Result(action, ResultStatus.SUCCESS, data=data)

    # -- the actions ------------------------------------------------------------------------

    async def _navigate(self, page: Page, action: Action) -> dict[str, Any]:
        url = action.target
        scheme = urlsplit(url).scheme.lower()
        if scheme not in self.allowed_schemes:
            raise ValueError(
                f"navigate refuses {scheme or 'scheme-less'!s} URLs "
                f"(allowed: {', '.join(sorted(self.allowed_schemes))}); script runs via evaluate"
            )
        wait_until = action.params.get("wait_until", "load")
        response = await page.goto(url, wait_until=wait_until)
        status = response.status if response is not None else None
        if status is not None and status >= 400:
            raise RuntimeError(f"navigate to {url} answered HTTP {status}")
        return {"url": page.url, "status": status, "title": await page.title()}

    async def _click(self, page: Page, action: Action) -> dict[str, Any]:
        await page.click(action.target)
        return {"clicked": action.target, "url": page.url}

    async def _fill(self, page: Page, action: Action) -> dict[str, Any]:
        value = action.params.get("value")
        if not isinstance(value, str):
            raise ValueError("fill needs params.value (text)")
        await page.fill(action.target, value)
        return {"filled": action.target}

    async def _select(self, page: Page, action: Action) -> dict[str, Any]:
        value, label = action.params.get("value"), action.params.get("label")
        if isinstance(value, str) or _str_list(value):
            chosen = await page.select_option(action.target, value=value)
        elif isinstance(label, str) or _str_list(label):
            chosen = await page.select_option(action.target, label=label)
        else:
            raise ValueError("select needs params.value or params.label (text or a list of text)")
        return {"selected": chosen}

    async def _screenshot(self, page: Page, action: Action) -> dict[str, Any]:
        path = self._screenshot_path(action.params.get("path"))
        if action.target in PAGE_TARGETS:
            png = await page.screenshot(path=path, full_page=bool(action.params.get("full_page")))
        else:
            png = await page.locator(action.target).screenshot(path=path)
        return {"png": png, "path": path}

    def _screenshot_path(self, path: object) -> str | None:
        if path is None:
            return None
        if not isinstance(path, str) or not path:
            raise ValueError("screenshot params.path must be text")
        if self.screenshot_dir is None:
            raise ValueError("screenshot params.path needs a screenshot_dir on the executor")
        resolved = (self.screenshot_dir / path).resolve()
        if not resolved.is_relative_to(self.screenshot_dir):
            raise ValueError(f"screenshot path {path!r} leaves {self.screenshot_dir}")
        return str(resolved)

    async def _evaluate(self, page: Page, action: Action) -> dict[str, Any]:
        expression = action.params.get("expression")
        if not isinstance(expression, str) or not expression:
            raise ValueError("evaluate needs params.expression (JavaScript)")
        arg = action.params.get("arg")
        if action.target in PAGE_TARGETS:
            value = await page.evaluate(expression, arg)
        else:
            value = await page.eval_on_selector(action.target, expression, arg)
        return {"value": value}


def _str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


@hookimpl
def aegis_register_executors(register: Register) -> None:
    register("playwright", PlaywrightExecutor)
