try:
    from .cli import entry
except KeyboardInterrupt:  # Ctrl+C while Python was still importing: no traceback
    raise SystemExit(130) from None

entry()
