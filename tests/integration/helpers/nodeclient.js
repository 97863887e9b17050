// nodeclient.js: the node program the tests run under the shim. One result
// line per attempt on stdout ("ok ..." or "err CODE ...").
//
//   http URL                 http.get: "ok STATUS BODY" or "err CODE"
//   fetch URL                global fetch (undici): "ok STATUS BODY" or "err CODE"
//   udp HOST PORT N TAG      N dgram sends: "sent OK errors CODE:n,..."
//   lookup NAME              dns.lookup: "ok ADDR" or "err CODE"
'use strict';
const http = require('http');
const dgram = require('dgram');
const dns = require('dns');

const [cmd, ...a] = process.argv.slice(2);

function out(s) { process.stdout.write(s + '\n'); }

if (cmd === 'http') {
  const req = http.get(a[0], { timeout: 10000 }, (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (c) => { body += c; });
    res.on('end', () => out(`ok ${res.statusCode} ${body.trim()}`));
  });
  req.on('error', (e) => out(`err ${e.code}`));
  req.on('timeout', () => { out('err TIMEOUT'); req.destroy(); });
} else if (cmd === 'fetch') {
  fetch(a[0]).then(async (r) => out(`ok ${r.status} ${(await r.text()).trim()}`),
    (e) => out(`err ${(e.cause && e.cause.code) || e.code || e.message}`));
} else if (cmd === 'udp') {
  const [host, port, n, tag] = [a[0], Number(a[1]), Number(a[2]), a[3]];
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  let done = 0, ok = 0;
  const errs = {};
  for (let i = 0; i < n; i++) {
    s.send(Buffer.from(`${tag} ${i}`), port, host, (e) => {
      if (e) errs[e.code] = (errs[e.code] || 0) + 1; else ok++;
      if (++done === n) {
        const es = Object.keys(errs).sort().map((k) => `${k}:${errs[k]}`).join(',');
        out(`sent ${ok} errors ${es || 'none'}`);
        s.close();
      }
    });
  }
} else if (cmd === 'lookup') {
  dns.lookup(a[0], { all: true }, (e, addrs) => {
    if (e) out(`err ${e.code}`); else out(`ok ${addrs.map((x) => x.address).join(' ')}`);
  });
} else {
  process.stderr.write(`nodeclient.js: unknown command ${cmd}\n`);
  process.exit(2);
}
