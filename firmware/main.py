"""Pico W entry point: run the iots6 application (all code lives in lib/iots6)."""

from iots6.app import main

main()
