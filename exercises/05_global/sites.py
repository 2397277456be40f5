"""This exercise's own admin site, so that its site-wide action stays in this exercise.

An action added with admin.site.add_action() would appear on every model of every exercise
(they all use Django's default site), and a learner's half-finished export would change the
other exercises' dropdowns and results.
"""

from django.contrib import admin

site = admin.AdminSite(name="global_admin")
site.site_header = "Exercise 05 · global actions"
