"""The tools of examples/marketing.flow (WayFlow's marketing example), with canned answers."""

from __future__ import annotations

import time


def get_user_information(username: str) -> dict[str, str]:
    """Who the user is."""
    time.sleep(0.3)
    users = {
        "alice": {"name": "Alice", "email": "alice@email.com", "date_of_birth": "1980/05/01"},
        "bob": {"name": "Bob", "email": "bob@email.com", "date_of_birth": "1970/10/01"},
    }
    return users.get(username, {})


def get_current_time() -> str:
    """The current time (fixed, so the example is reproducible)."""
    time.sleep(0.3)
    return "2025/10/01 22:30"


def get_user_last_purchases(username: str) -> list[dict[str, str]]:
    """What the user bought before."""
    time.sleep(0.3)
    purchases = {
        "alice": [{"title": "Arkanoid", "item_type": "videogame"}, {"title": "Pacman", "item_type": "videogame"}],
        "bob": [{"title": "Batman Begins", "item_type": "movie"}, {"title": "Inception", "item_type": "movie"}],
    }
    return purchases.get(username, [])


def get_items_on_sale() -> list[dict[str, str]]:
    """What is on sale today."""
    time.sleep(0.3)
    return [
        {"title": "Broom", "item_type": "household"},
        {"title": "Metroid", "item_type": "videogame"},
        {"title": "The Lord of the Rings", "item_type": "movie"},
    ]
