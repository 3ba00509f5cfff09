#!/usr/bin/env python3
"""Bounded chaos soak: broker, `all`, `serve` on the learner's store, a topic replica and a paced producer.

For --minutes it runs inference load (`continualserve bench`), at most 400 random management actions, a probe of
each server every second and a SIGKILL and restart every 60 to 75 s. Then it stops the load and waits 30 s. It checks
that the servers serve the same version, that the pin files agree, that no temporary directory is left and that
the version lock is free. It stops every process it started, by its saved PID, and counts the ids that the
training log lists twice. It talks only to 127.0.0.1 and writes report.json under --out. Usage: bench/soak.py [--minutes 8] [--out DIR], after
`dotnet build -c Release`. The whole run takes --minutes plus about 2 minutes.
"""
import argparse
import fcntl
import glob
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "src/Server/bin/Release/net10.0/linux-x64/continualserve")
MODEL = "fashion-mnist"
MAX_ACTIONS = 400
STALL_SECONDS = 2.0

parser = argparse.ArgumentParser()
parser.add_argument("--minutes", type=float, default=8.0, help="length of the chaos phase, in minutes")
parser.add_argument("--out", default=f"/tmp/soak-{int(time.time())}", help="directory for stores, logs and the report")
parser.add_argument("--seed", type=int, default=1)
args = parser.parse_args()
random.seed(args.seed)
os.makedirs(args.out, exist_ok=True)
STORE_A = os.path.join(args.out, "storeA")
STORE_B = os.path.join(args.out, "storeB")
TOKEN_FILE = os.path.join(args.out, "token")
with open(TOKEN_FILE, "w") as f:
    f.write("soak-management-token-0123456789")
TOKEN = "soak-management-token-0123456789"
PORTS = {"all": 18180, "serveA": 18181, "replica": 18182}
stop_event = threading.Event()
lock = threading.Lock()
report = {"requests": {}, "actions": {}, "kills": [], "stalls": [], "errors_5xx": {}, "rss": {}, "notes": []}
procs = {}


def log(message):
    line = f"{time.strftime('%H:%M:%S')} {message}"
    print(line, flush=True)
    with open(os.path.join(args.out, "soak.log"), "a") as f:
        f.write(line + "\n")


def start(name, argv):
    out = open(os.path.join(args.out, f"{name}.log"), "a")
    proc = subprocess.Popen([BIN] + argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    procs[name] = (proc, argv)
    with open(os.path.join(args.out, "pids"), "a") as f:
        f.write(f"{name} {proc.pid}\n")
    log(f"started {name} pid {proc.pid}")
    return proc


def http(method, port, path, body=None, content_type="application/json", timeout=10.0, auth=False):
    headers = {"Content-Type": content_type} if body is not None else {}
    if auth:
        headers["Authorization"] = f"Bearer {TOKEN}"
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method, headers=headers)
    began = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(), time.monotonic() - began
    except urllib.error.HTTPError as error:
        return error.code, error.read(), time.monotonic() - began
    except Exception as error:  # connection refused during a restart, or a timeout
        return None, str(error).encode(), time.monotonic() - began


def count(table, key):
    with lock:
        table[key] = table.get(key, 0) + 1


def infer_body():
    pixels = ",".join(str(random.randint(0, 255)) for _ in range(784))
    return f'{{"inputs":[{{"name":"input","shape":[1,784],"datatype":"FP32","data":[{pixels}]}}]}}'.encode()


BODY = infer_body()
INFER = f"/v2/models/{MODEL}/infer"


def record(server, route, status, elapsed, body):
    count(report["requests"], f"{server} {route} {status}")
    if elapsed > STALL_SECONDS and status is not None:
        with lock:
            report["stalls"].append({"t": time.time(), "server": server, "route": route, "seconds": round(elapsed, 2), "status": status})
        log(f"STALL {server} {route} {elapsed:.2f}s status {status}")
    if status is not None and status >= 500:
        text = body[:300].decode(errors="replace")
        documented = status == 503 and (route.endswith("ready") or "no version" in text.lower() or "pinned" in text.lower() or "retry" in text.lower())
        key = f"{server} {route} {status} {'documented' if documented else 'UNEXPECTED'}"
        count(report["errors_5xx"], key)
        if not documented:
            log(f"5xx {key}: {text}")


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def watcher():
    last_rss = 0.0
    while not stop_event.is_set():
        began = time.monotonic()
        for server, port in PORTS.items():
            for route, method, body in (("/v2/health/live", "GET", None), ("/v2/health/ready", "GET", None), (INFER, "POST", BODY)):
                status, payload, elapsed = http(method, port, route, body, timeout=15.0)
                record(server, route, status, elapsed, payload)
        if time.monotonic() - last_rss >= 10:
            last_rss = time.monotonic()
            with lock:
                for name, (proc, _) in procs.items():
                    report["rss"].setdefault(name, []).append((round(time.time()), proc.pid, rss_kib(proc.pid)))
        time.sleep(max(0.0, 1.0 - (time.monotonic() - began)))


def loader(server):
    body_path = os.path.join(args.out, "body.json")
    with open(body_path, "wb") as f:
        f.write(BODY)
    while not stop_event.is_set():
        result = subprocess.run([BIN, "bench", "--url", f"http://127.0.0.1:{PORTS[server]}{INFER}", "--body", body_path,
                                 "--clients", "2", "--seconds", "20", "--max-requests", "4000", "--json"],
                                capture_output=True, text=True, timeout=60)
        with open(os.path.join(args.out, f"bench-{server}.jsonl"), "a") as f:
            f.write(result.stdout.strip().replace("\n", " ") + f" rc={result.returncode}\n")


def versions(port):
    status, payload, _ = http("GET", port, "/manage/v1/versions", auth=True)
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, None


def manager():
    golden = json.dumps({"examples": [{"label": i % 10, "features": [float((i * 7 + j) % 256) for j in range(784)]} for i in range(5)]}).encode()
    for _ in range(MAX_ACTIONS):
        if stop_event.wait(random.uniform(0.5, 2.0)):
            return
        server = random.choice(list(PORTS))
        port = PORTS[server]
        action = random.choice(["promote", "promote", "rollback", "unpin", "unpin", "pause", "resume", "resume", "golden"])
        if action == "promote":
            _, listing = versions(port)
            numbers = [v.get("version") for v in (listing or {}).get("versions", []) if isinstance(v, dict)]
            number = random.choice(numbers) if numbers else 1
            status, payload, elapsed = http("POST", port, f"/manage/v1/versions/{number}/promote", auth=True)
        elif action == "rollback":
            status, payload, elapsed = http("POST", port, "/manage/v1/rollback", auth=True)
        elif action == "unpin":
            status, payload, elapsed = http("DELETE", port, "/manage/v1/pin", auth=True)
        elif action == "pause":
            status, payload, elapsed = http("POST", port, "/manage/v1/learning/pause", auth=True)
        elif action == "resume":
            status, payload, elapsed = http("POST", port, "/manage/v1/learning/resume", auth=True)
        else:
            status, payload, elapsed = http("PUT", port, "/manage/v1/golden-set", golden, auth=True)
        count(report["actions"], f"{server} {action} {status}")
        record(server, f"manage {action}", status, elapsed, payload)


def killer():
    order = ["all", "serveA", "replica"]
    kills = 0
    while not stop_event.wait(random.uniform(60, 75)):
        name = order[kills % len(order)]
        kills += 1
        proc, argv = procs[name]
        log(f"kill -9 {name} pid {proc.pid}")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        with lock:
            report["kills"].append({"t": time.time(), "process": name, "pid": proc.pid})
        start(name, argv)


def start_roles():
    """Starts the broker, the roles and the producer, and returns the producer's arguments and process."""
    start("broker", ["broker"])
    bootstrap = None
    deadline = time.monotonic() + 30
    while bootstrap is None and time.monotonic() < deadline:
        time.sleep(0.5)
        with open(os.path.join(args.out, "broker.log")) as f:
            match = re.search(r"bootstrap servers: (\S+)", f.read())
            bootstrap = match.group(1) if match else None
    if bootstrap is None:
        sys.exit("broker printed no address")
    log(f"bootstrap {bootstrap}")
    all_url = f"http://127.0.0.1:{PORTS['all']}"
    start("all", ["all", "--bootstrap-servers", bootstrap, "--store", STORE_A, "--urls", all_url, "--store-url", all_url,
                  "--round-examples", "200", "--strategy", "best", "--training-log", "true", "--session-timeout", "00:00:03",
                  "--management-token-file", TOKEN_FILE, "--Learner:RetainedVersions=3"])
    time.sleep(8)
    start("serveA", ["serve", "--store", STORE_A, "--urls", f"http://127.0.0.1:{PORTS['serveA']}", "--management-token-file", TOKEN_FILE])
    start("replica", ["serve", "--store", STORE_B, "--bootstrap-servers", bootstrap, "--store-url", all_url,
                      "--urls", f"http://127.0.0.1:{PORTS['replica']}", "--management-token-file", TOKEN_FILE,
                      "--Distribution:RetainedVersions=3"])
    produce_args = ["produce", "--bootstrap-servers", bootstrap, "--group", "continualserve-learner", "--record-format", "binary", "--max-lag", "1000"]
    return produce_args, start("produce", produce_args)


def main():
    produce_args, producer = start_roles()
    time.sleep(5)
    threads = [threading.Thread(target=watcher), threading.Thread(target=manager), threading.Thread(target=killer)]
    threads += [threading.Thread(target=loader, args=(server,)) for server in PORTS]
    for thread in threads:
        thread.start()

    end = time.monotonic() + args.minutes * 60
    test_set_started = False
    while time.monotonic() < end:
        time.sleep(5)
        # The training set alone can end before the chaos phase does, so the test set (ids "test-*") follows it.
        if not test_set_started and producer.poll() is not None:
            test_set_started = True
            producer = start("produce", produce_args + ["--test-set"])

    log("chaos phase over: stopping producer, actions, kills and load")
    stop_event.set()
    if producer.poll() is None:
        os.kill(producer.pid, signal.SIGTERM)
        producer.wait(timeout=20)
    for thread in threads:
        thread.join(timeout=70)
    time.sleep(30)  # quiet: a round in progress finishes, announcements reach the replica
    final_checks()
    stop_roles()
    after_stop_checks()
    with open(os.path.join(args.out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    log(f"report: {os.path.join(args.out, 'report.json')}")


def stop_roles():
    for name in ["replica", "serveA", "all", "broker"]:
        proc, _ = procs[name]
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                report["notes"].append(f"{name} pid {proc.pid} did not stop within 40 s of SIGTERM; killed")
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


def final_checks():
    final = {}
    for server, port in PORTS.items():
        status, listing = versions(port)
        final[server] = {"versions_status": status, "live": (listing or {}).get("live"), "pinned": (listing or {}).get("pinned"),
                         "pinError": (listing or {}).get("pinError"), "listed": [v.get("version") for v in (listing or {}).get("versions", [])]}
    for store in (STORE_A, STORE_B):
        pin_path = os.path.join(store, "pinned-version")
        final[f"pin file {os.path.basename(store)}"] = open(pin_path).read().strip() if os.path.exists(pin_path) else None
        final[f"leftovers {os.path.basename(store)}"] = glob.glob(os.path.join(store, ".tmp-*")) + glob.glob(os.path.join(store, ".download-*"))
        lock_path = os.path.join(store, ".versions.lock")
        if os.path.exists(lock_path):
            with open(lock_path) as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(f, fcntl.LOCK_UN)
                    final[f"lock free {os.path.basename(store)}"] = True
                except OSError:
                    final[f"lock free {os.path.basename(store)}"] = False
    report["final"] = final
    log("final: " + json.dumps(final))


def after_stop_checks():
    checkpoint_root = os.path.join(STORE_A, "learner-checkpoint")
    newest = sorted(glob.glob(os.path.join(checkpoint_root, "c*")))
    result = {"checkpoints": [os.path.basename(p) for p in newest]}
    if newest:
        with open(os.path.join(newest[-1], "checkpoint.json")) as f:
            checkpoint = json.load(f)
        result["checkpoint_keys"] = {k: v for k, v in checkpoint.items() if not isinstance(v, (list, dict)) or k.lower().find("offset") >= 0}
    log_path = os.path.join(checkpoint_root, "trained-ids.log")
    if os.path.exists(log_path):
        with open(log_path) as f:
            ids = [line.strip() for line in f if line.strip()]
        result["trained_ids"] = len(ids)
        result["trained_twice"] = len(ids) - len(set(ids))
    report["learner"] = result
    log("learner: " + json.dumps(result)[:2000])


try:
    main()
finally:
    stop_event.set()
    for name, (proc, _) in list(procs.items()):
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
