// A client of Elastic Path Commerce Cloud's Exporter API, written from its
// public documentation (client_credentials token, Jobs API) with nothing
// but Node's standard library. The Go end-to-end test runs it against
// `exportd dev`:
//
//   EP_API_URL=... EP_CLIENT_ID=... EP_CLIENT_SECRET=... node client.mjs '<filter>'
//
// It prints one JSON line: {id, status, error, rows, total}, where rows
// and total are counted from the downloaded CSV file.
import { gunzipSync } from 'node:zlib';

const api = process.env.EP_API_URL;
const filter = process.argv[2] ?? '';

async function check(res, what) {
  if (!res.ok) {
    throw new Error(`${what}: HTTP ${res.status} ${await res.text()}`);
  }
  return res;
}

// Elastic Path's token endpoint takes form data.
async function accessToken() {
  const res = await fetch(`${api}/oauth/access_token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: process.env.EP_CLIENT_ID,
      client_secret: process.env.EP_CLIENT_SECRET,
    }),
  });
  const body = await (await check(res, 'access token')).json();
  if (body.token_type !== 'Bearer' || !body.access_token) {
    throw new Error(`unexpected token response ${JSON.stringify(Object.keys(body))}`);
  }
  return body.access_token;
}

// parseCSV reads RFC 4180: quoted fields may hold commas, quotes ("") and
// line breaks; records end with CRLF or LF.
function parseCSV(text) {
  const records = [];
  let record = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c === '"') {
      quoted = true;
    } else if (c === ',') {
      record.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      record.push(field);
      records.push(record);
      record = [];
      field = '';
    } else {
      field += c;
    }
  }
  if (field !== '' || record.length > 0) {
    record.push(field);
    records.push(record);
  }
  return records;
}

async function main() {
  const token = await accessToken();
  const auth = { Authorization: `Bearer ${token}` };

  const created = await fetch(`${api}/v2/jobs`, {
    method: 'POST',
    headers: { ...auth, 'Content-Type': 'application/json' },
    body: JSON.stringify({ data: { type: 'job', job_type: 'order_export', filter } }),
  });
  let job = (await (await check(created, 'create job')).json()).data;

  const deadline = Date.now() + 120_000;
  while (job.status === 'pending' || job.status === 'started') {
    if (Date.now() > deadline) throw new Error(`job ${job.id} still ${job.status} after 2 minutes`);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const res = await fetch(`${api}/v2/jobs/${encodeURIComponent(job.id)}`, { headers: auth });
    job = (await (await check(res, 'get job')).json()).data;
  }
  const out = { id: job.id, status: job.status, error: job.error ?? '' };
  if (job.status !== 'success') {
    console.log(JSON.stringify(out));
    return;
  }

  const fileRes = await fetch(`${api}/v2/jobs/${encodeURIComponent(job.id)}/file`, { headers: auth });
  const file = await (await check(fileRes, 'get job file')).json();
  const href = file.href ?? file.data?.href;

  // The link is public: a plain GET, no credentials.
  let bytes = Buffer.from(await (await check(await fetch(href), 'download')).arrayBuffer());
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    bytes = gunzipSync(bytes);
  }
  const records = parseCSV(bytes.toString('utf8'));
  const header = records.shift();
  const col = header.indexOf('total');
  if (col < 0) throw new Error(`no total column in ${header}`);
  out.rows = records.length;
  out.total = records.reduce((sum, r) => sum + Number(r[col]), 0);
  console.log(JSON.stringify(out));
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
