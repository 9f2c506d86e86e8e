"""Reference data: the topic catalogue and the fixed enumerations."""

from __future__ import annotations

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.extensions import db

APPEAL_TYPES = ("consultation", "incident", "proposal", "complaint", "gratitude")
CHANNELS = ("phone", "web", "telegram", "whatsapp", "instagram", "facebook", "open311")
LANGUAGES = ("kk", "ru", "en")
URGENCIES = ("emergency", "urgent", "normal")


class Topic(db.Model):
    """A topic of the city's catalogue (roads, heating, ...), named in kk/ru/en."""

    __tablename__ = "topic"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name_kk: Mapped[str] = mapped_column(String(120))
    name_ru: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(120))
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    def name(self, locale: str) -> str:
        """The topic's name in ``locale`` (kk/ru/en), falling back to Russian."""
        return getattr(self, f"name_{locale}", None) or self.name_ru
