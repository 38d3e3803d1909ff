"""The key bar at the bottom of each screen: what it shows at each width, and clicks on it."""

from __future__ import annotations

from lora_chat.tui.app import LoraChatApp
from lora_chat.tui.widgets.key_bar import KeyBar


def bar_text(app: LoraChatApp) -> str:
    return str(app.screen.query_one(KeyBar).render())


async def test_wide_bar_shows_every_key_and_the_palette(settings):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause()
        text = bar_text(app)
        for item in ("^q Quit", "f1 Datasets", "f2 Train", "f3 Adapters", "f4 Chat", "a Add", "/ Search", "^s Save"):
            assert item in text
        assert "more keys" not in text
        assert text.rstrip().endswith("^p palette")
        assert len(text) == 200


async def test_narrow_bar_folds_screen_keys(settings):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = bar_text(app)
        assert text.startswith(" ^q Quit  f1-f4 Screens  a Add ")
        assert "f2 Train" not in text
        assert "? more keys" in text
        assert text.rstrip().endswith("^p palette")
        assert len(text) == 80


async def test_very_narrow_bar_drops_the_palette_key_first(settings):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(30, 24)) as pilot:
        await pilot.pause()
        text = bar_text(app)
        assert "palette" not in text
        assert text.rstrip().endswith("? more keys")


async def test_clicking_a_key_presses_it(settings):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause()
        text = bar_text(app)
        assert await pilot.click(KeyBar, offset=(text.index("f3 Adapters") + 1, 0))
        await pilot.pause()
        assert app.current_mode == "adapters"


async def test_clicking_more_keys_lists_them_all(settings):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = bar_text(app)
        assert await pilot.click(KeyBar, offset=(text.index("? more keys") + 1, 0))
        await pilot.pause()
        assert app.screen.query("HelpPanel")


async def test_clicking_a_folded_group_does_nothing(settings):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = bar_text(app)
        assert await pilot.click(KeyBar, offset=(text.index("f1-f4") + 1, 0))
        await pilot.pause()
        assert app.current_mode == "datasets"
        assert not app.screen.query("HelpPanel")
