"""Store figures from tracks: footfall over lines, occupancy, dwell, service and waiting times, heat maps.

Each module holds one incremental meter with no pipeline dependency (plain points,
ids and clock seconds in, rows out), so the same code scores ground-truth tracks in
``bench/analytics.py``; :class:`vizoflow.nodes.store.StoreAnalytics` feeds them frames.
"""
