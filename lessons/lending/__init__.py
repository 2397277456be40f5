"""A library's lending desk: the worked example the lessons and notebooks show."""
