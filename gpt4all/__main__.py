"""`python -m gpt4all`: chat with a model in the terminal (see cli.py)."""
import sys

from .cli import main

sys.exit(main())
