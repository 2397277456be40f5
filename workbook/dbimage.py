"""A warm process's runs copy the test database from an image instead of building it each time.

Building the in-memory SQLite test database (a table per model, then the content types and
permissions of post_migrate) is a fifth of a forked run of `workbook watch` or of the mutation
check, the same work every time: the learner's files change what the admin does, never the
models. With $WORKBOOK_DB_IMAGES set (the warm processes set it to a folder of their own), the
first run saves the database Django built there, named by a digest of everything the schema
and post_migrate's rows come from; a later run with the same digest copies it in with SQLite's
backup API, as Django's own parallel test runner clones a test database. Any other run (a
learner's `pytest`, PostgreSQL, a file database, --reuse-db) builds it as Django does.
"""

import hashlib
import os
import sqlite3
import tempfile
from pathlib import Path

VARIABLE = "WORKBOOK_DB_IMAGES"


def install():
    """Wrap SQLite's create_test_db, once, when $WORKBOOK_DB_IMAGES names a folder."""
    from django.db.backends.sqlite3.creation import DatabaseCreation

    if not os.environ.get(VARIABLE) or getattr(DatabaseCreation, "_workbook_image", False):
        return
    build = DatabaseCreation.create_test_db

    def create_test_db(self, verbosity=1, autoclobber=False, serialize=None, keepdb=False):
        name = self._get_test_db_name()
        if keepdb or serialize or not self.is_in_memory_db(name):
            return build(self, verbosity, autoclobber, serialize, keepdb)
        image = Path(os.environ[VARIABLE]) / f"{digest(self.connection)}.sqlite3"
        if not image.is_file():
            name = build(self, verbosity, autoclobber, serialize, keepdb)
            try:
                save(self.connection, image)
            except (OSError, sqlite3.Error):  # a full disk, say: the next run builds it again
                pass
            return name
        return restore(self, name, image)

    DatabaseCreation.create_test_db = create_test_db
    DatabaseCreation._workbook_image = True


def digest(connection):
    """What the test database's tables and rows follow from: Django's and SQLite's versions,
    each model's table and columns, and the names post_migrate gives content types and
    permissions."""
    import django
    from django.apps import apps
    from django.conf import settings

    # The installed apps connect post_migrate's receivers, which write the rows.
    parts = [django.__version__, sqlite3.sqlite_version, list(settings.INSTALLED_APPS)]
    for model in sorted(apps.get_models(include_auto_created=True), key=lambda m: m._meta.label):
        meta = model._meta
        parts.append((
            meta.label, meta.db_table, meta.managed, meta.proxy, meta.verbose_name_raw,
            [(f.name, f.column, f.db_type(connection), f.null, f.unique, f.primary_key,
              f.db_index, f.remote_field and f.remote_field.model._meta.label)
             for f in meta.local_fields],
            [(f.name, f.m2m_db_table()) for f in meta.local_many_to_many],
            [repr(c) for c in meta.constraints], [repr(i) for i in meta.indexes],
            sorted(map(tuple, meta.unique_together)), list(meta.permissions),
            list(meta.default_permissions),
        ))
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def save(connection, image):
    """Copy the database just built to IMAGE, atomically: runs side by side may race."""
    image.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=image.parent, suffix=".partial")
    os.close(fd)
    try:
        target = sqlite3.connect(partial)
        try:
            connection.connection.backup(target)
        finally:
            target.close()
        os.replace(partial, image)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def restore(creation, name, image):
    """What create_test_db leaves behind, from IMAGE: the settings point at the in-memory
    database, which holds the image's tables and rows, and no content type is cached, as
    post_migrate leaves none (a test counting queries sees the same count)."""
    from django.conf import settings
    from django.contrib.contenttypes.models import ContentType
    from django.core.management import call_command

    connection = creation.connection
    connection.close()
    settings.DATABASES[connection.alias]["NAME"] = name
    connection.settings_dict["NAME"] = name
    connection.ensure_connection()
    source = sqlite3.connect(image)
    try:
        source.backup(connection.connection)
    finally:
        source.close()
    ContentType.objects.clear_cache()
    call_command("createcachetable", database=connection.alias)
    connection.ensure_connection()
    return name
