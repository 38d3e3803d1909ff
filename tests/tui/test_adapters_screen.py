"""The Adapters screen over a library of fake adapter folders."""

from __future__ import annotations

import zipfile

from textual.widgets import DataTable, Input, Sparkline, Static

from lora_chat.core import paths
from lora_chat.core.library import AdapterLibrary
from lora_chat.tui.app import LoraChatApp
from lora_chat.tui.screens.adapters import AdaptersScreen
from lora_chat.tui.widgets.dialogs import ConfirmDialog, ErrorDialog
from tests.tui.conftest import make_adapter, settle


async def open_adapters(pilot) -> AdaptersScreen:
    await pilot.press("f3")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, AdaptersScreen)
    return screen


def column(screen: AdaptersScreen, key: str) -> list[str]:
    return [str(value) for value in screen.query_one("#adapters", DataTable).get_column(key)]


async def test_table_lists_broken_entries(settings):
    make_adapter(paths.adapters_dir(), "pirate")
    make_adapter(paths.adapters_dir(), "half-copied", weights=False)
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_adapters(pilot)
        assert column(screen, "name") == ["half-copied", "pirate"]
        assert column(screen, "status") == ["broken", "ok"]
        assert column(screen, "problem") == ["missing adapter weights (adapter_model.safetensors)", ""]
        assert column(screen, "loss")[1] == "0.3100"
        assert column(screen, "rank")[1] == "8"

        info = str(screen.query_one("#adapter-info", Static).render())
        assert "BROKEN: missing adapter weights" in info


async def test_detail_shows_settings_and_curve(settings):
    make_adapter(paths.adapters_dir(), "pirate")
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_adapters(pilot)
        info = str(screen.query_one("#adapter-info", Static).render())
        assert "target-modules: q,v" in info
        assert "learning-rate: 0.001" in info
        assert "trainable parameters: 86,016" in info
        assert len(screen.query_one("#loss-curve", Sparkline).data) == 30
        assert len(screen.query_one("#eval-curve", Sparkline).data) == 10


async def test_rename_moves_folder(settings):
    make_adapter(paths.adapters_dir(), "pirate")
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_adapters(pilot)
        await pilot.press("r")
        await pilot.pause()
        app.screen.query_one(Input).value = "pirate-v2"
        await pilot.press("enter")
        await settle(pilot)

        assert column(screen, "name") == ["pirate-v2"]
        assert (paths.adapters_dir() / "pirate-v2" / "adapter_model.safetensors").is_file()
        assert not (paths.adapters_dir() / "pirate").exists()


async def test_rename_rejects_taken_name(settings):
    make_adapter(paths.adapters_dir(), "pirate")
    make_adapter(paths.adapters_dir(), "shanty")
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_adapters(pilot)
        await pilot.press("r")
        await pilot.pause()
        dialog = app.screen
        dialog.query_one(Input).value = "shanty"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is dialog
        assert "already exists" in str(dialog.query_one("#prompt-problem", Static).render())


async def test_delete_asks_and_releases(settings):
    make_adapter(paths.adapters_dir(), "pirate")
    released: list[str] = []
    app = LoraChatApp(settings=settings)
    app.release_adapter = released.append
    app.current_adapter = "pirate"
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_adapters(pilot)

        # Escape keeps the adapter.
        await pilot.press("delete")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("escape")
        await settle(pilot)
        assert (paths.adapters_dir() / "pirate").is_dir()
        assert released == []

        await pilot.press("delete")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        assert not (paths.adapters_dir() / "pirate").exists()
        assert released == ["pirate"]
        assert app.current_adapter is None
        assert "adapter none" in app.sub_title
        assert column(screen, "name") == []


async def test_export_to_zip(settings, tmp_path):
    make_adapter(paths.adapters_dir(), "pirate")
    target = tmp_path / "pirate.zip"
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_adapters(pilot)
        await pilot.press("x")
        await pilot.pause()
        app.screen.query_one(Input).value = str(target)
        await pilot.press("enter")
        await settle(pilot)

    with zipfile.ZipFile(target) as archive:
        assert sorted(archive.namelist()) == ["pirate/adapter_config.json", "pirate/adapter_model.safetensors", "pirate/lora_chat.json"]


async def test_export_of_broken_entry_fails(settings, tmp_path):
    make_adapter(paths.adapters_dir(), "half-copied", weights=False)
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_adapters(pilot)
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, ErrorDialog)
        assert "is broken" in app.screen.message


async def enter_import_source(pilot, source) -> None:
    """Press i on the Adapters screen and submit ``source`` in the import prompt."""
    await pilot.press("i")
    await pilot.pause()
    pilot.app.screen.query_one(Input).value = str(source)
    await pilot.press("enter")
    await pilot.pause()


async def test_import_folder(settings, tmp_path):
    source = make_adapter(tmp_path, "peft-out")
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_adapters(pilot)
        await enter_import_source(pilot, source)
        assert app.screen.query_one(Input).value == "peft-out"
        await pilot.press("enter")
        await settle(pilot)
        assert column(screen, "name") == ["peft-out"]


async def test_import_exported_zip(settings, tmp_path):
    make_adapter(paths.adapters_dir(), "pirate")
    archive = AdapterLibrary().export("pirate", tmp_path / "shared-pirate.zip")
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_adapters(pilot)
        await enter_import_source(pilot, archive)
        assert app.screen.query_one(Input).value == "shared-pirate"
        await pilot.press("enter")
        await settle(pilot)
        assert column(screen, "name") == ["pirate", "shared-pirate"]


async def test_import_rejects_non_zip_file(settings, tmp_path):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not an adapter")
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_adapters(pilot)
        await pilot.press("i")
        await pilot.pause()
        dialog = app.screen
        dialog.query_one(Input).value = str(text_file)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is dialog
        assert "neither a folder nor a .zip file" in str(dialog.query_one("#prompt-problem").render())


async def test_open_in_chat_sets_adapter(settings):
    make_adapter(paths.adapters_dir(), "pirate")
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_adapters(pilot)
        await pilot.press("c")
        await pilot.pause()
        assert app.current_mode == "chat"
        assert app.requested_adapter == "pirate"


async def test_new_adapter_appears_on_return(settings):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_adapters(pilot)
        assert column(screen, "name") == []
        await pilot.press("f1")
        make_adapter(paths.adapters_dir(), "fresh")
        await pilot.press("f3")
        await pilot.pause()
        assert column(screen, "name") == ["fresh"]
