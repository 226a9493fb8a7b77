# The ldapmta image: built with the development dependencies, run with the production ones only, as a
# user that is not root. Configured through LDAPMTA_* environment variables (docs/configuration.md) or a
# YAML file named by LDAPMTA_CONFIG. docs/deploy.md explains it; test/unit/deploy.test.ts keeps this file
# true (no Docker engine is needed for that).
#
#   docker build -t ldapmta .
#   docker run --init -e LDAPMTA_HOSTNAME=mx1.example.org -e LDAPMTA_DIRECTORY__URLS='[ldap://ldap1:389]' ... ldapmta

# --- build: the TypeScript sources compiled to dist/ ---------------------------------------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: "prepare" would run the build before the sources are copied; it runs two steps below.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- runtime: node, the production dependencies, dist/ and the schema files ---------------------------------
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
# A fixed uid/gid (10025), so bind-mounted spools and mailboxes can be given to it on the host. The spool and
# mail base are created here, owned by that user, so fresh named volumes mounted on them inherit the owner.
RUN groupadd --system --gid 10025 ldapmta \
 && useradd --system --uid 10025 --gid ldapmta --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin ldapmta \
 && mkdir -p /var/spool/ldapmta /var/mail \
 && chown ldapmta:ldapmta /var/spool/ldapmta /var/mail \
 && chmod 0750 /var/spool/ldapmta /var/mail
COPY package.json package-lock.json ./
# --omit=dev: no TypeScript, tsx or test clients in the image. --ignore-scripts: "prepare" would try to build
# without TypeScript; dist/ comes from the build stage instead. No production dependency has an install script.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
# schema/: the embedded directory's sample LDIF (used when directory.urls is empty) and the LDAP schema files.
# config/: the commented example configuration, for reference.
COPY schema ./schema
COPY config ./config
USER ldapmta:ldapmta
# The queue (spool) and the Maildirs (mailboxes): the two things to keep and back up. These are the defaults of
# the spool and mailboxes keys; set LDAPMTA_SPOOL / LDAPMTA_MAILBOXES only together with the mounts.
VOLUME ["/var/spool/ldapmta", "/var/mail"]
# SMTP, submissions (465), submission (587), POP3, IMAP, IMAPS (993, listen.imaps), POP3S (995, listen.pop3s).
# Binding them as a user needs net.ipv4.ip_unprivileged_port_start=0, which Docker sets in containers by default.
# The admin listener (8025) stays on loopback and is not exposed.
EXPOSE 25 465 587 110 143 993 995
# /healthz of the admin listener (listen.admin, 127.0.0.1:8025 by default), found through the same configuration
# the server reads (file and environment, the bearer token included); node itself, as the slim image has no curl.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["node", "-e", "import('/app/dist/config.js').then(async ({ configPath, loadConfig, parseHostPort }) => { const config = loadConfig(configPath(undefined)); const admin = parseHostPort(config.listen.admin); if (admin === null) throw new Error('listen.admin is off'); const host = admin.host === '0.0.0.0' ? '127.0.0.1' : admin.host === '::' ? '::1' : admin.host; const url = 'http://' + (host.includes(':') ? '[' + host + ']' : host) + ':' + admin.port + '/healthz'; const headers = config.admin.token === '' ? {} : { authorization: 'Bearer ' + config.admin.token }; const res = await fetch(url, { headers, signal: AbortSignal.timeout(5000) }); if (res.status !== 200) throw new Error(url + ' answered ' + res.status); }).then(() => process.exit(0), (err) => { console.error('unhealthy: ' + err.message); process.exit(1); })"]
# SIGTERM: stop accepting, finish what is in flight, exit (give it time: docker stop -t 90).
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve"]
