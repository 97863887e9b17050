// rwnode.js: node under the shim for the rewrite tests. Fetches
// http://NAME:PORT/PATH with http.get while a 20 ms timer counts ticks, so
// the test can see that the event loop kept running while the connection
// was being made upstream. Prints "ok STATUS BODY ticks=N" or "err CODE".
//
//   node rwnode.js NAME PORT PATH
'use strict';
const http = require('http');
const [name, port, path] = process.argv.slice(2);

let ticks = 0;
const timer = setInterval(() => { ticks++; }, 20);
const done = (line) => { clearInterval(timer); console.log(line); };

http.get({ host: name, port: Number(port), path, family: 4 }, (res) => {
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (d) => { body += d; });
  res.on('end', () => done(`ok ${res.statusCode} ${body.trim()} ticks=${ticks}`));
}).on('error', (e) => done(`err ${e.code}`));
