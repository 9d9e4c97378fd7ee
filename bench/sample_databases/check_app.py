#!/usr/bin/env python3
"""check_app.py URL OUT.json: every last value the app wrote is in the database."""
import json, sys, psycopg
url, path = sys.argv[1], sys.argv[2]
d = json.load(open(path)); bad = []
with psycopg.connect(url) as conn:
    for k, v in d["last"].items():
        t, key, col = k.split("|")
        if t == "customer":
            got = conn.execute("select email from customer where customer_id=%s", (int(key),)).fetchone()[0]
        elif t == "film":
            got = str(conn.execute("select rental_rate from film where film_id=%s", (int(key),)).fetchone()[0])
        elif t == "payment":
            r = conn.execute("select amount from payment where payment_id=%s", (int(key),)).fetchone()
            got = str(r[0]) if r else "missing"
        elif t == "rental":
            r = conn.execute("select return_date::text from rental where rental_id=%s", (int(key),)).fetchone()
            got = "deleted" if r is None else r[0]
        else:
            a, f = map(int, key.split(","))
            got = conn.execute("select exists(select 1 from film_actor where actor_id=%s and film_id=%s)", (a, f)).fetchone()[0]
        if got != v:
            bad.append((k, v, got))
print(f"app writes {d['writes']}, errors {d['n_errors']}, p99 {d['p99_ms'] and round(d['p99_ms'],1)} ms, max {d['max_ms'] and round(d['max_ms'],1)} ms; "
      f"last values checked {len(d['last'])}, lost or wrong {len(bad)}")
for b in bad[:10]: print("  ", b)
for e in sorted(set(d["errors"]))[:10]: print("   error:", e)
