# Shared by bench/run.sh and bench/soak.sh: ports, readiness, and the configs of the simulated
# upstream and of the gateway under test. Sourced, not run.

# A throwaway folder, $work, and what the script starts in it: every pid added to `started`
# is stopped, and every command added to `stops` run (daemons such as PostgreSQL), on exit.
begin_work() {
    work=$(mktemp -d)
    started=()
    stops=()
    trap cleanup EXIT
    trap 'exit 130' INT TERM
}

cleanup() {
    local pid stop
    for stop in "${stops[@]}"; do
        $stop >/dev/null 2>&1 || true
    done
    for pid in "${started[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${started[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}

# The gateway alone on GATEWAY_CPU, the upstream and load generator on LOAD_CPU, so the
# gateway's numbers do not depend on what else the scheduler put beside it: sets the command
# prefixes pin_gateway and pin_load (empty, with a warning, without 2 CPUs or taskset).
pin_cpus() {
    pin_gateway=()
    pin_load=()
    if [[ $(nproc --all) -ge 2 ]] && command -v taskset >/dev/null; then
        pin_gateway=(taskset -c "$GATEWAY_CPU")
        pin_load=(taskset -c "$LOAD_CPU")
    else
        echo "warning: fewer than 2 CPUs or no taskset: running unpinned" >&2
    fi
}

# A throwaway key named after $1: sets KEY and KEY_SHA256 (the config stores only the hash).
new_key() {
    KEY="sk-$1-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    KEY_SHA256=$(printf '%s' "$KEY" | sha256sum | cut -d' ' -f1)
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Polls until one of the URLs answers 2xx, the process dies, or about 10 s pass.
wait_ready() {
    local name=$1 pid=$2 try url
    shift 2
    for try in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "error: $name exited; its log:" >&2
            cat "$work/$name.log" >&2
            exit 1
        fi
        for url in "$@"; do
            if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then
                return 0
            fi
        done
        sleep 0.1
    done
    echo "error: $name not ready after 100 tries; its log:" >&2
    cat "$work/$name.log" >&2
    exit 1
}

# The upstream: `switchyard sim` with one model, `fast`, of time to first token $1 ms and $2
# output tokens, at an unbounded token rate.
sim_config() {
    cat <<EOF
# Zero-latency upstream (unless UPSTREAM_TTFT_MS): unbounded token rate, a short answer.
[providers.sim]
kind = "sim"

[providers.sim.models.fast]
ttft_ms = { p50 = $1 }
tokens_per_second = { p50 = 1e9 }
output_tokens = { p50 = $2 }

EOF
}

# The gateway: listen port $1, data folder $2, log level $3, upstream port $4, cache budget $5
# MB, and one key (id $7) whose SHA-256 is $6.
gateway_config() {
    cat <<EOF
[server]
listen = "127.0.0.1:$1"

[storage]
data_dir = "$2"

[telemetry]
log_format = "text"
log_level = "$3"

[providers.upstream]
kind = "openai"
base_url = "http://127.0.0.1:$4/v1"

[models.fast]
deployments = [{ provider = "upstream" }]
price = { input_per_mtok = 0.15, output_per_mtok = 0.60 }

[cache]
enabled = false
embedder = "$PWD/models/minilm-static-256"
max_mb = $5

# Limits and budgets on, set high enough never to refuse: the benchmark measures their cost.
[[keys]]
id = "$7"
secret_sha256 = "$6"
rpm = 100000000
tpm = 1000000000
budget_usd_daily = 1000000
budget_usd_monthly = 10000000
EOF
}

# The route \`auto\` (ROUTED=1), to append to a gateway config: the router decides between
# two models on the same upstream, and only this route uses the cache, so \`fast\` stays the
# plain path. Apart, so a plain gateway's memory is not the router's and its embedder's.
routed_config() {
    cat <<EOF
[models.fast-large]
deployments = [{ provider = "upstream", upstream_model = "fast" }]
price = { input_per_mtok = 5.0, output_per_mtok = 15.0 }

[routes.auto]
candidates = [{ model = "fast", head = "mistralai/Mixtral-8x7B-Instruct-v0.1" }, { model = "fast-large" }]
router = "builtin:routellm-neighbours.v1"
embedder = "$PWD/models/minilm-static-256"
cache = { enabled = true }
EOF
}

# The embedded demo's guard policy, to append to a gateway config.
guard_policy_config() {
    cat <<EOF
[guards.pii]
action = "pseudonymize"
actions = { SECRET = "block" }

[guards.injection]
action = "block"

[guards.toxicity]

[guards.compliance]
forbidden = ["(?i)guaranteed (returns|profits?)"]
EOF
}

# Builds the release binaries unless SKIP_BUILD=1, and names them SWITCHYARD and BENCH
# (under TARGET_DIR).
release_binaries() {
    if [[ ${SKIP_BUILD:-0} != 1 ]]; then
        cargo build --release -p switchyard -p switchyard-bench
    fi
    SWITCHYARD=$TARGET_DIR/release/switchyard
    BENCH=$TARGET_DIR/release/switchyard-bench
    MOCK_UPSTREAM=$TARGET_DIR/release/switchyard-mock-upstream
}

# nginx as a plain reverse proxy to 127.0.0.1:$2 on 127.0.0.1:$1, one worker, keep-alive to
# the upstream, no buffering (streams pass chunk by chunk), no access log: the floor a proxy is
# judged against. Run in the foreground by the caller (`nginx -p "$work/nginx" -c nginx.conf`).
nginx_config() {
    cat <<EOF
daemon off;
worker_processes 1;
pid nginx.pid;
error_log stderr warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    upstream model { server 127.0.0.1:$2; keepalive 256; }
    server {
        listen 127.0.0.1:$1;
        location / {
            proxy_pass http://model;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
EOF
}

# PostgreSQL and Redis for a replica of a fleet (FLEET=1), throwaway, in $work, on the load's
# CPU (pin_load), like the upstream. PostgreSQL keeps its defaults (fsync on). Sets PG_URL and
# REDIS_URL; what it starts is stopped by the caller's cleanup (`started`, `stops`).
start_fleet_services() {
    local bin pg_port redis_port run=() try
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    pg_port=$(free_port)
    redis_port=$(free_port)
    mkdir -p "$work/pg"
    if [[ $(id -u) == 0 ]]; then
        # PostgreSQL refuses to run as root: the distribution's postgres user runs it.
        chown postgres "$work/pg"
        chmod 755 "$work"
        run=(runuser -u postgres --)
    fi
    "${run[@]}" "$bin/initdb" -D "$work/pg" -U postgres --auth=trust >/dev/null
    "${pin_load[@]}" "${run[@]}" "$bin/pg_ctl" -D "$work/pg" -l "$work/pg/server.log" -w \
        -o "-p $pg_port -c listen_addresses=127.0.0.1 -k $work/pg" start >/dev/null
    stops+=("${run[*]} $bin/pg_ctl -D $work/pg -m immediate -w stop")
    "${run[@]}" "$bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres switchyard
    "${pin_load[@]}" redis-server --bind 127.0.0.1 --port "$redis_port" --save "" \
        --appendonly no >"$work/redis.log" 2>&1 &
    started+=("$!")
    for try in $(seq 1 100); do
        redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    PG_URL="postgres://postgres@127.0.0.1:$pg_port/switchyard"
    REDIS_URL="redis://127.0.0.1:$redis_port"
}
