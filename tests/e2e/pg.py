"""A throwaway PostgreSQL 15 server for the end-to-end tests (Debian's
postgresql package; scripts/setup.sh installs it).

Tests run as root and initdb refuses root, so the data directory belongs to
the postgres user and the server runs as that user (runuser). It listens on
127.0.0.1 only, on a free port, with password authentication for TCP, and
is stopped when the test's cleanups run, whatever the outcome. A server that
cannot start fails the test: it is never skipped.

    server = pg.Server(self)               # started; stopped by the test's cleanup
    uri = server.new_database()            # postgresql://logferry:PASSWORD@127.0.0.1:PORT/dbN
"""

import os
import shutil
import socket
import subprocess
import tempfile

BIN = "/usr/lib/postgresql/15/bin"
USER = "logferry"
PASSWORD = "s3cret-Pg-pass"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(args, timeout=60):
    return subprocess.run(["runuser", "-u", "postgres", "--"] + args, capture_output=True, text=True,
                          timeout=timeout)


class Server:
    def __init__(self, testcase=None):
        self.dir = tempfile.mkdtemp(prefix="logferry-pg-")
        os.chmod(self.dir, 0o755)
        shutil.chown(self.dir, "postgres")
        self.data = os.path.join(self.dir, "data")
        self.port = _free_port()
        self._databases = 0
        if testcase is not None:
            testcase.addCleanup(self.cleanup)
        r = _as_postgres([BIN + "/initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync"])
        if r.returncode != 0:
            raise AssertionError("initdb failed: %s%s" % (r.stdout, r.stderr))
        # Password authentication over TCP: the tests check that it never shows.
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write("local all postgres trust\nhost all postgres 127.0.0.1/32 trust\n"
                    "host all all 127.0.0.1/32 scram-sha-256\n")
        self.start()
        self.psql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (USER, PASSWORD))

    def start(self):
        r = _as_postgres([BIN + "/pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w", "-t", "60",
                          "-o", "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off" % (self.port, self.dir),
                          "start"], timeout=90)
        if r.returncode != 0:
            raise AssertionError("PostgreSQL did not start: %s%s\n%s" % (r.stdout, r.stderr, self.log()))

    def stop(self):
        _as_postgres([BIN + "/pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "60", "stop"], timeout=90)

    def running(self):
        return _as_postgres([BIN + "/pg_ctl", "-D", self.data, "status"]).returncode == 0

    def log(self):
        try:
            with open(os.path.join(self.dir, "log"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def cleanup(self):
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def psql(self, sql, database="postgres"):
        r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
                            "-U", "postgres", "-d", database, "-At", "-c", sql], capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            raise AssertionError("psql %r failed: %s" % (sql, r.stderr))
        return r.stdout

    def new_database(self):
        """A new database owned by the logferry role; its URI, password included."""
        self._databases += 1
        name = "ledger%d" % self._databases
        self.psql("CREATE DATABASE %s OWNER %s" % (name, USER))
        return self.uri(name)

    def uri(self, database, password=True):
        auth = "%s:%s" % (USER, PASSWORD) if password else USER
        return "postgresql://%s@127.0.0.1:%d/%s" % (auth, self.port, database)

    def query(self, database, sql):
        """Rows of a query as lists of strings (psql -At: '|' separated)."""
        out = self.psql(sql, database)
        return [line.split("|") for line in out.splitlines() if line]
