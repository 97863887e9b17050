// ownresolve.js SERVER NAME [PORT]: node's own resolver (c-ares, not
// getaddrinfo) asks SERVER (port 53) for NAME's A records: "ok ADDR,..." or
// "err CODE"; with PORT it then connects to the first address: "connected"
// or "err CODE".
const dns = require('dns');
const net = require('net');
const [server, name, port] = process.argv.slice(2);
const r = new dns.Resolver({ timeout: 3000, tries: 1 });
r.setServers([server]);
r.resolve4(name, (e, addrs) => {
  if (e) {
    console.log('err ' + e.code);
    return;
  }
  console.log('ok ' + addrs.join(','));
  if (!port) return;
  const s = net.connect(Number(port), addrs[0], () => {
    console.log('connected');
    s.destroy();
  });
  s.on('error', (err) => console.log('err ' + err.code));
});
