"""The key bar at the bottom of each screen: what it shows at each width, and clicks on it."""

from __future__ import annotations

import contextlib
from typing import AsyncIterator

from textual.pilot import Pilot

from lora_chat.core.settings import Settings
from lora_chat.tui.app import LoraChatApp
from lora_chat.tui.widgets.key_bar import KeyBar


@contextlib.asynccontextmanager
async def running_app(settings: Settings, size: tuple[int, int]) -> AsyncIterator[tuple[LoraChatApp, Pilot, str]]:
    """Run the app at ``size`` and yield it, its pilot and the key bar's text on the first screen."""
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        yield app, pilot, str(app.screen.query_one(KeyBar).render())


async def test_wide_bar_shows_every_key(settings):
    async with running_app(settings, (200, 40)) as (_app, _pilot, text):
        for item in ("^q Quit", "f1 Datasets", "f2 Train", "f3 Adapters", "f4 Chat", "a Add", "/ Search", "^s Save"):
            assert item in text
        assert "more keys" not in text
        assert text.rstrip().endswith("^p palette")
        assert len(text) == 200


async def test_narrow_bar_folds_screen_keys(settings):
    async with running_app(settings, (80, 24)) as (_app, _pilot, text):
        assert text.startswith(" ^q Quit  f1-f4 Screens  a Add ")
        assert "f2 Train" not in text
        assert "? more keys" in text
        assert text.rstrip().endswith("^p palette")
        assert len(text) == 80


async def test_very_narrow_bar_drops_palette(settings):
    async with running_app(settings, (30, 24)) as (_app, _pilot, text):
        assert "palette" not in text
        assert text.rstrip().endswith("? more keys")


async def test_clicking_key_presses_it(settings):
    async with running_app(settings, (200, 40)) as (app, pilot, text):
        assert await pilot.click(KeyBar, offset=(text.index("f3 Adapters") + 1, 0))
        await pilot.pause()
        assert app.current_mode == "adapters"


async def test_clicking_more_keys_lists_all(settings):
    async with running_app(settings, (80, 24)) as (app, pilot, text):
        assert await pilot.click(KeyBar, offset=(text.index("? more keys") + 1, 0))
        await pilot.pause()
        assert app.screen.query("HelpPanel")


async def test_clicking_folded_group_does_nothing(settings):
    async with running_app(settings, (80, 24)) as (app, pilot, text):
        assert await pilot.click(KeyBar, offset=(text.index("f1-f4") + 1, 0))
        await pilot.pause()
        assert app.current_mode == "datasets"
        assert not app.screen.query("HelpPanel")
