#!/usr/bin/env python3
"""A pagila 'application' writing until STOP exists; logs the last value it wrote per (table, key, column).
usage: app.py URL STOPFILE OUT.json [rate]"""
import json, os, random, sys, threading, time
import psycopg
url, stop, out = sys.argv[1], sys.argv[2], sys.argv[3]
rate = float(sys.argv[4]) if len(sys.argv) > 4 else 50.0
last, errors, lat, lock = {}, [], [], threading.Lock()
mine_rentals, mine_fa = [], set()

def note(k, v):
    with lock:
        last[k] = v

def op(conn, rnd):
    kind = rnd.choice(["email", "rate", "payment", "rental_new", "rental_return", "rental_del", "fa"])
    with conn.transaction():
        if kind == "email":
            cid = rnd.randint(1, 599); v = f"App.{rnd.randint(0, 10**6)}@Example.ORG"
            conn.execute("update customer set email = %s where customer_id = %s", (v, cid))
            note(f"customer|{cid}|email", v)
        elif kind == "rate":
            fid = rnd.randint(1, 1000); v = f"{rnd.randint(0, 9999) / 100:.2f}"
            conn.execute("update film set rental_rate = %s where film_id = %s", (v, fid))
            note(f"film|{fid}|rental_rate", v)
        elif kind == "payment":
            amt = f"{rnd.randint(0, 99999) / 100:.2f}"
            pid = conn.execute("""insert into payment (customer_id, staff_id, rental_id, amount, payment_date)
                values (%s, 1, %s, %s, '2022-07-20 10:00+00') returning payment_id""",
                (rnd.randint(1, 599), rnd.randint(1, 16000), amt)).fetchone()[0]
            note(f"payment|{pid}|amount", amt)
        elif kind == "rental_new":
            rid = conn.execute("""insert into rental (rental_date, inventory_id, customer_id, staff_id)
                values (now() + random() * interval '1000 days', %s, %s, 1) returning rental_id""",
                (rnd.randint(1, 4581), rnd.randint(1, 599))).fetchone()[0]
            with lock: mine_rentals.append(rid)
            note(f"rental|{rid}|return_date", None)
        elif kind == "rental_return":
            rid = rnd.randint(1, 16049)
            r = conn.execute("update rental set return_date = '2030-01-01 00:00+00' where rental_id = %s returning rental_id", (rid,)).fetchone()
            if r: note(f"rental|{rid}|return_date", "2030-01-01 00:00:00+00")
        elif kind == "rental_del":
            with lock:
                rid = mine_rentals.pop(rnd.randrange(len(mine_rentals))) if mine_rentals else None
            if rid:
                if conn.execute("delete from rental where rental_id = %s", (rid,)).rowcount:
                    note(f"rental|{rid}|return_date", "deleted")
                else:
                    with lock: mine_rentals.append(rid)
        else:
            a, f = rnd.randint(1, 200), rnd.randint(1, 1000)
            if conn.execute("select 1 from film_actor where actor_id=%s and film_id=%s", (a, f)).fetchone():
                conn.execute("delete from film_actor where actor_id=%s and film_id=%s", (a, f))
                note(f"film_actor|{a},{f}|exists", False)
            else:
                conn.execute("insert into film_actor (actor_id, film_id) values (%s, %s)", (a, f))
                note(f"film_actor|{a},{f}|exists", True)

def client(seed, clients):
    rnd = random.Random(seed); conn = psycopg.connect(url)
    interval = clients / rate; due = time.perf_counter()
    while not os.path.exists(stop):
        w = due - time.perf_counter()
        if w > 0: time.sleep(w)
        t = due; due += interval
        try:
            op(conn, rnd)
            with lock: lat.append((time.perf_counter() - t) * 1000)
        except Exception as e:
            with lock: errors.append(f"{type(e).__name__}: {str(e).splitlines()[0]}")
            try: conn.close()
            except Exception: pass
            conn = psycopg.connect(url)
    conn.close()

N = 4
ts = [threading.Thread(target=client, args=(k, N)) for k in range(N)]
[t.start() for t in ts]; [t.join() for t in ts]
lat.sort()
json.dump({"writes": len(lat), "errors": errors[:50], "n_errors": len(errors),
           "p99_ms": lat[int(0.99 * len(lat))] if lat else None, "max_ms": lat[-1] if lat else None,
           "last": last}, open(out, "w"))
