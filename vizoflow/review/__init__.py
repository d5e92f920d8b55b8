"""The store's review page: a read-only web app over a site's runs and evidence (``mode=serve``).

:mod:`~vizoflow.review.server` binds and guards it, :mod:`~vizoflow.review.app` has the
routes, and the rest reads what runs wrote: :mod:`~vizoflow.review.folders` (where it may
read), :mod:`~vizoflow.review.alerts` (events, clips, delivery), :mod:`~vizoflow.review.charts`
(the day), :mod:`~vizoflow.review.pictures` (thumbnails, cameras) and
:mod:`~vizoflow.review.setup` (zones and lines as YAML). Guide: docs/review.md.
"""
