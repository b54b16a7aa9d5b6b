"""Corpus preparation scripts: the bundled Ding corpus, WMT'14 En-De, CNN/DailyMail, AR bootstrap."""
