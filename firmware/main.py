"""Pico W entry point: run the iots6 application (all code lives in lib/iots6; the boot order is in board.py)."""

from iots6.board import main

main()
