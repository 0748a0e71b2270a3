// A Clover Export API client written from Clover's documentation
// (docs.clover.com/docs/exporting-merchant-data): create an export, poll it
// until it is no longer PENDING or IN_PROGRESS, then download every file of
// exportUrls with a plain GET. It uses nothing but Node's global fetch.
//
// Configuration, from the environment:
//   CLOVER_BASE_URL  e.g. https://apisandbox.dev.clover.com
//   CLOVER_TOKEN     the API token (sent as "Authorization: Bearer")
//   CLOVER_MERCHANT  the merchant id
//   CLOVER_TYPE      ORDERS or PAYMENTS
//   CLOVER_START, CLOVER_END  the window, epoch milliseconds
//
// It checks what the docs promise and prints one JSON line:
// {"id", "status", "percentComplete", "files", "objects", "sum",
// "regressions"} where sum adds up order totals (ORDERS) or payment amounts
// (PAYMENTS) and regressions lists polls where percentComplete went down.
// Any broken promise exits non-zero with the reason on stderr.

const env = (name) => {
  const v = process.env[name];
  if (!v) fail(`${name} is not set`);
  return v;
};

function fail(msg) {
  console.error(`clover client: ${msg}`);
  process.exit(1);
}

function check(cond, msg) {
  if (!cond) fail(msg);
}

const base = env("CLOVER_BASE_URL").replace(/\/+$/, "");
const token = env("CLOVER_TOKEN");
const merchant = env("CLOVER_MERCHANT");
const type = env("CLOVER_TYPE");
const startTime = Number(env("CLOVER_START"));
const endTime = Number(env("CLOVER_END"));
const headers = { Authorization: `Bearer ${token}` };
const exportsURL = `${base}/v3/merchants/${encodeURIComponent(merchant)}/exports/`;

async function json(resp, what) {
  const text = await resp.text();
  check(resp.ok, `${what}: HTTP ${resp.status}: ${text}`);
  try {
    return JSON.parse(text);
  } catch (e) {
    fail(`${what}: not JSON: ${text.slice(0, 200)}`);
  }
}

function checkExport(exp, what) {
  for (const k of ["id", "type", "status", "percentComplete", "startTime", "endTime", "createdTime", "modifiedTime"]) {
    check(k in exp, `${what}: no ${k} in ${JSON.stringify(exp)}`);
  }
  check(exp.type === type, `${what}: type ${exp.type}, asked for ${type}`);
  check(exp.merchantRef && exp.merchantRef.id === merchant, `${what}: merchantRef ${JSON.stringify(exp.merchantRef)}`);
  check(Number.isInteger(exp.percentComplete) && exp.percentComplete >= 0 && exp.percentComplete <= 100,
    `${what}: percentComplete ${exp.percentComplete}`);
  check(Number(exp.startTime) === startTime && Number(exp.endTime) === endTime, `${what}: window ${exp.startTime}-${exp.endTime}`);
  check(["PENDING", "IN_PROGRESS", "DONE", "FAILED"].includes(exp.status), `${what}: status ${exp.status}`);
}

// Step 1: create the request.
const created = await json(await fetch(exportsURL, {
  method: "POST",
  headers: { ...headers, "Content-Type": "application/json" },
  body: JSON.stringify({ type, startTime, endTime }),
}), "create");
checkExport(created, "create");
check(created.status === "PENDING", `create: status ${created.status}`);

// Step 2: check the status and percent complete periodically.
let exp = created;
const deadline = Date.now() + 120_000;
let lastPercent = 0;
const regressions = [];
while (exp.status === "PENDING" || exp.status === "IN_PROGRESS") {
  check(Date.now() < deadline, `export ${exp.id} still ${exp.status} after 2 minutes`);
  await new Promise((r) => setTimeout(r, 200));
  exp = await json(await fetch(exportsURL + encodeURIComponent(created.id), { headers }), "status");
  checkExport(exp, "status");
  check(exp.id === created.id, `status: id ${exp.id}`);
  if (exp.percentComplete < lastPercent) {
    // Clover does not promise a monotonic percentage; report, don't fail.
    regressions.push(`${lastPercent}->${exp.percentComplete} (${exp.status})`);
  }
  lastPercent = exp.percentComplete;
}
check(exp.status === "DONE", `export ${exp.id} ended ${exp.status}`);
check(exp.percentComplete === 100, `DONE at ${exp.percentComplete}%`);
check(Number.isInteger(exp.availableUntil) && exp.availableUntil > Date.now(), `availableUntil ${exp.availableUntil}`);
check(exp.exportUrls && Array.isArray(exp.exportUrls.elements), `exportUrls ${JSON.stringify(exp.exportUrls)}`);

// Step 3: download every file with a plain GET, no credentials.
let objects = 0;
let sum = 0;
for (const [i, u] of exp.exportUrls.elements.entries()) {
  check(u.export && u.export.id === exp.id, `exportUrls[${i}].export ${JSON.stringify(u.export)}`);
  let url;
  try {
    url = new URL(u.url); // absolute: no base to resolve against
  } catch (e) {
    fail(`exportUrls[${i}].url is not absolute: ${u.url}`);
  }
  const file = await json(await fetch(url), `download ${i}`);
  check(Array.isArray(file.elements), `file ${i} has no elements array`);
  check(file.elements.length <= 1000, `file ${i} has ${file.elements.length} objects, more than 1000`);
  for (const o of file.elements) {
    check(typeof o.id === "string" && Number.isInteger(o.createdTime), `file ${i}: object ${JSON.stringify(o).slice(0, 200)}`);
    if (type === "ORDERS") {
      check(Number.isInteger(o.total) && o.lineItems && Array.isArray(o.lineItems.elements), `file ${i}: order ${o.id}`);
      check(o.createdTime >= startTime && o.createdTime < endTime, `order ${o.id} created ${o.createdTime}, outside the window`);
      sum += o.total;
    } else {
      check(Number.isInteger(o.amount) && o.order && typeof o.order.id === "string", `file ${i}: payment ${o.id}`);
      sum += o.amount;
    }
  }
  objects += file.elements.length;
}

// A file URL is for plain GETs only; the API itself still wants the token.
const unauth = await fetch(exportsURL + encodeURIComponent(exp.id));
check(unauth.status === 401, `status without a token: HTTP ${unauth.status}`);

console.log(JSON.stringify({
  id: exp.id, status: exp.status, percentComplete: exp.percentComplete,
  files: exp.exportUrls.elements.length, objects, sum, regressions,
}));
