"""Datasets: `sources` fetches and verifies them (the `fetch_data` rule's script, `python -m optrepro.data
fetch`); `manifest` is what runs check before they read one (the recorded manifest, the hashes now, the fetch's
status). docs/data.md says what is fetched from where."""
