"""Exports of a prepared Dataset to other tools' formats (RecBole atomic files)."""
