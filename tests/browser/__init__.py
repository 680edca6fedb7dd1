"""The staff console in a real browser: Debian's chromium, driven by Playwright, with axe-core's checks."""
