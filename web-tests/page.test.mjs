// The web page driven in headless Chromium against a running handler (fixture models, a temporary
// local store). Started by scripts/web-test.sh, which passes:
//   WEB_TEST_BASE_URL   the handler, e.g. http://127.0.0.1:40123
//   WEB_TEST_DATA_DIR   its DATA_DIR, to read the feedback log and write a report
//   WEB_TEST_ARTIFACTS  where the screenshot goes
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const baseUrl = requiredEnv("WEB_TEST_BASE_URL");
const dataDir = requiredEnv("WEB_TEST_DATA_DIR");
const artifacts = process.env.WEB_TEST_ARTIFACTS || "target/web-test";
const chromiumPath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const FUNCTION_KEY = "test-key-not-a-secret";

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; run this through scripts/web-test.sh`);
  return value;
}

/** Every `.jsonl` line under a folder, parsed. */
function jsonLinesUnder(folder) {
  if (!fs.existsSync(folder)) return [];
  const records = [];
  for (const entry of fs.readdirSync(folder, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith(".jsonl")) continue;
    const file = path.join(entry.parentPath ?? entry.path, entry.name);
    for (const line of fs.readFileSync(file, "utf8").split("\n")) {
      if (line.trim()) records.push(JSON.parse(line));
    }
  }
  return records;
}

async function waitFor(predicate, what, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe("web page", () => {
  let context;
  let userDataDir;
  let page;
  const requests = [];

  before(async () => {
    await waitFor(async () => {
      const response = await fetch(`${baseUrl}/api/health`).catch(() => null);
      return response && response.ok;
    }, "the handler to serve a model", 30_000);

    // The report panel reads reports/latest.json; write one as the metrics timer would.
    fs.mkdirSync(path.join(dataDir, "reports"), { recursive: true });
    fs.writeFileSync(path.join(dataDir, "reports", "latest.json"), JSON.stringify({
      generated_at: "2026-11-25T11:00:00Z",
      overall: {
        last_hour: { predictions: 42, labelled: 5, macro_f1: 0.61, negative_share: 0.55, bad_buzz: true },
        last_24h: { predictions: 800, labelled: 40, macro_f1: 0.72, negative_share: 0.31, bad_buzz: false },
        since_start: { predictions: 5120, labelled: 300, macro_f1: null, negative_share: 0.29, bad_buzz: false },
      },
    }));

    userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "web-test-chromium-"));
    // A fresh profile each run; playwright-core takes it as the persistent context's folder.
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath,
      headless: true,
      args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
      ],
      viewport: { width: 1200, height: 900 },
      locale: "en-GB",
      timezoneId: "UTC",
    });
    page = await context.newPage();
    page.on("request", (request) => requests.push(request));
    await page.goto(`${baseUrl}/api/ui`);
    await page.getByLabel("Function key").fill(FUNCTION_KEY);
  });

  after(async () => {
    await context?.close();
    if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
  });

  test("the page is served at /api/ and /api/ui and loads nothing from elsewhere", async () => {
    for (const route of ["/api/", "/api/ui"]) {
      const response = await fetch(`${baseUrl}${route}`);
      assert.equal(response.status, 200, route);
      assert.match(response.headers.get("content-type"), /^text\/html/);
      const html = await response.text();
      assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+stylesheet|https?:\/\/(?!127)/i,
        "no external scripts, styles or absolute URLs");
    }
    assert.equal(await page.title(), "Air Paradis · tweet sentiment");
    for (const request of requests) {
      assert.ok(request.url().startsWith(baseUrl), `only the API is reached, not ${request.url()}`);
    }
  });

  test("the report panel shows macro-F1, negative share, the bad-buzz flag and the report time", async () => {
    const table = page.locator("#report-table");
    await table.waitFor();
    const lastHour = table.locator('tr[data-window="last_hour"]');
    assert.equal(await lastHour.locator("td").nth(0).innerText(), "0.610");
    assert.equal(await lastHour.locator("td").nth(1).innerText(), "55.0 %");
    assert.equal(await lastHour.locator("td").nth(2).innerText(), "Yes");
    assert.equal(await table.locator('tr[data-window="since_start"] td').nth(0).innerText(), "–",
      "a null macro-F1 (no labels yet) is shown as unknown");
    assert.match(await page.locator("#report-buzz").innerText(), /Bad buzz flagged: last hour/);
    assert.match(await page.locator("#report-time").innerText(), /25 Nov 2026, 11:00/);
  });

  test("with no bad buzz the panel says nothing about one, and never shows \"null\"", async () => {
    const report = path.join(dataDir, "reports", "latest.json");
    const flagged = fs.readFileSync(report, "utf8");
    const calm = JSON.parse(flagged);
    for (const window of Object.values(calm.overall)) window.bad_buzz = false;
    fs.writeFileSync(report, JSON.stringify(calm));
    try {
      await page.getByRole("button", { name: "Refresh" }).click();
      await page.locator('#report-table tr[data-window="last_hour"] td:nth-child(4)').filter({ hasText: "No" }).waitFor();
      assert.equal(await page.locator("#report-buzz").count(), 0, "no bad-buzz banner");
      const panel = await page.locator("#report-body").innerText();
      assert.doesNotMatch(panel, /null|undefined/, panel);
      assert.match(panel, /Report time/);
    } finally {
      fs.writeFileSync(report, flagged);
    }
    await page.getByRole("button", { name: "Refresh" }).click();
    await page.locator("#report-buzz").waitFor();
  });

  test("the report panel shows the challenger's paired verdict, and nothing without a challenger", async () => {
    assert.equal(await page.locator("#report-verdict").count(), 0, "no challenger, no verdict line");
    const report = path.join(dataDir, "reports", "latest.json");
    const plain = fs.readFileSync(report, "utf8");
    const withChallenger = JSON.parse(plain);
    withChallenger.challenger = {
      champion: "naive-bayes/1", challenger: "naive-bayes/2", labelled: 120, since: "2026-11-25T10:00:00Z",
      champion_macro_f1: 0.61, challenger_macro_f1: 0.74, difference: 0.13, difference_ci95: null,
      mcnemar_p: 0.002, verdict: "not_enough_labels", labels_needed: 80, reason: "120 paired labelled tweets, 200 needed",
    };
    fs.writeFileSync(report, JSON.stringify(withChallenger));
    try {
      await page.getByRole("button", { name: "Refresh" }).click();
      const line = page.locator("#report-verdict");
      await line.waitFor();
      const text = await line.innerText();
      assert.match(text, /Challenger naive-bayes\/2: not enough labels yet \(80 more needed\)/);
      assert.match(text, /Same 120 labelled tweets: macro-F1 0\.740 against the champion's 0\.610\./);
      assert.doesNotMatch(text, /null|undefined|NaN/);
      withChallenger.challenger.verdict = "promote";
      withChallenger.challenger.labels_needed = 0;
      withChallenger.challenger.difference_ci95 = [0.05, 0.2];
      fs.writeFileSync(report, JSON.stringify(withChallenger));
      await page.getByRole("button", { name: "Refresh" }).click();
      await page.locator('#report-verdict[data-verdict="promote"]').waitFor();
      assert.match(await line.innerText(), /promote the challenger\. .*\[0\.050, 0\.200\]/);
    } finally {
      fs.writeFileSync(report, plain);
    }
    await page.getByRole("button", { name: "Refresh" }).click();
    await page.locator("#report-verdict").waitFor({ state: "detached" });
  });

  test("a whitespace-only tweet gets the API's 400 in plain words", async () => {
    await page.getByLabel("Tweet text").fill("   ");
    await page.getByRole("button", { name: "Score", exact: true }).click();
    const alert = page.locator("#single-error");
    await alert.waitFor({ state: "visible" });
    const text = await alert.innerText();
    assert.match(text, /The API could not use this input: text is empty/);
    assert.match(text, /HTTP 400 · invalid_input/);
  });

  test("typing a tweet and pressing Ctrl+Enter shows the answer", async () => {
    const box = page.getByLabel("Tweet text");
    await box.fill("I hate this airline, flight delayed again :(");
    assert.equal(await page.locator("#tweet-count").innerText(), "44 / 280 characters");
    await box.press("Control+Enter");
    await page.locator("#result-sentiment").waitFor();
    assert.equal(await page.locator("#result-sentiment").innerText(), "Negative");
    assert.equal(await page.locator("#result-model").innerText(), "fixture-nb · version 1");
    assert.match(await page.locator("#result-score").innerText(), /^0\.\d{3} /);
    assert.match(await page.locator("#result-latency").innerText(), /^\d+\.\d ms$/);
    assert.equal(await page.locator("#single-error").isVisible(), false, "the earlier error is gone");
    assert.equal(await box.getAttribute("maxlength"), "280");

    const predict = requests.find((r) => r.url().endsWith("/api/predict") && r.method() === "POST");
    assert.ok(predict, "the page called /api/predict");
    assert.equal(predict.headers()["x-functions-key"], FUNCTION_KEY, "the key goes in x-functions-key");
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
    assert.ok(!stored.includes(FUNCTION_KEY), "the key is not stored by the page");
  });

  test("👎 sends the opposite label and confirms only once the feedback is stored", async () => {
    const id = (await page.locator("#result-id").innerText()).trim();
    const responsePromise = page.waitForResponse((r) => r.url().endsWith("/api/feedback"));
    await page.getByRole("button", { name: /Wrong/ }).click();
    const response = await responsePromise;
    assert.deepEqual(JSON.parse(response.request().postData()), { id, true_label: 1 },
      "the prediction was negative, so 'wrong' means positive");
    assert.equal(response.status(), 201);
    await page.getByText("Thanks: recorded as positive.").waitFor();
    const record = await waitFor(
      () => jsonLinesUnder(path.join(dataDir, "logs", "feedback")).find((r) => r.prediction_id === id),
      "the feedback record in the store");
    assert.equal(record.true_label, 1);
  });

  test("👍, pressed from the keyboard, sends the predicted class", async () => {
    const box = page.getByLabel("Tweet text");
    await box.fill("What a lovely crew, thank you :)");
    await box.press("Control+Enter");
    await page.locator("#result-sentiment").filter({ hasText: "Positive" }).waitFor();
    const id = (await page.locator("#result-id").innerText()).trim();
    const responsePromise = page.waitForResponse((r) => r.url().endsWith("/api/feedback"));
    await page.getByRole("button", { name: /Right/ }).focus();
    await page.keyboard.press("Enter");
    const response = await responsePromise;
    assert.deepEqual(JSON.parse(response.request().postData()), { id, true_label: 1 });
    assert.equal(response.status(), 201);
    await page.getByText("Thanks: recorded as positive.").waitFor();
    await waitFor(
      () => jsonLinesUnder(path.join(dataDir, "logs", "feedback")).some((r) => r.prediction_id === id && r.true_label === 1),
      "the 👍 feedback record in the store");
  });

  test("a batch is scored and sorted with the most negative first", async () => {
    const tweets = [
      "The crew was lovely, great flight :)",
      "lost my bag again, worst airline ever",
      "boarding now",
      "I love the new seats, thank you",
      "delayed three hours and nobody tells us anything :(",
    ];
    await page.getByLabel(/Tweets, one per line/).fill(tweets.join("\n") + "\n\n");
    assert.equal(await page.locator("#batch-count").innerText(), "5 tweets");
    await page.getByRole("button", { name: "Score all" }).click();
    const rows = page.locator("#batch-table tbody tr");
    await rows.first().waitFor();
    assert.equal(await rows.count(), tweets.length);
    const scores = (await rows.evaluateAll((trs) => trs.map((tr) => Number(tr.dataset.score))));
    assert.deepEqual(scores, [...scores].sort((a, b) => a - b), "ascending scores: most negative first");
    assert.ok(scores[0] < scores[scores.length - 1], "the fixture model tells these tweets apart");
    const texts = await rows.locator("td.text").allInnerTexts();
    assert.deepEqual([...texts].sort(), [...tweets].sort(), "every pasted tweet is shown once");
    assert.equal(await rows.first().locator(".sentiment").innerText(), "Negative");
  });

  test("more than 64 lines are refused before sending, with the reason", async () => {
    const before = requests.length;
    const lines = Array.from({ length: 65 }, (_, i) => `tweet number ${i}`);
    await page.getByLabel(/Tweets, one per line/).fill(lines.join("\n"));
    await page.getByRole("button", { name: "Score all" }).click();
    assert.match(await page.locator("#batch-error").innerText(), /65 tweets; one batch takes at most 64/);
    assert.equal(requests.length, before, "nothing was sent");
  });

  test("a batch over the API's 256 KB body limit gets its 413 in plain words", async () => {
    const long = (i) => `tweet ${i} ` + "so late ".repeat(560);
    await page.getByLabel(/Tweets, one per line/).fill(Array.from({ length: 60 }, (_, i) => long(i)).join("\n"));
    await page.getByLabel(/Tweets, one per line/).press("Control+Enter");
    const alert = page.locator("#batch-error");
    await alert.waitFor({ state: "visible" });
    assert.match(await alert.innerText(), /too much text for one request[\s\S]*HTTP 413 · payload_too_large/);
    assert.equal(await page.locator("#batch-table").count(), 0, "no stale results next to the error");
  });

  test("a missing report, a 503 and a network failure are each said in plain words", async () => {
    const report = path.join(dataDir, "reports", "latest.json");
    fs.renameSync(report, report + ".away");
    try {
      await page.getByRole("button", { name: "Refresh" }).click();
      await page.locator("#report-none").waitFor();
      assert.match(await page.locator("#report-none").innerText(), /No report yet/);
    } finally {
      fs.renameSync(report + ".away", report);
    }
    await page.getByRole("button", { name: "Refresh" }).click();
    await page.locator("#report-table").waitFor();

    // The handler here always has a model; the browser stands in for one without, and for a
    // network that drops the request.
    await page.route("**/api/predict", (route) => route.fulfill({
      status: 503,
      contentType: "application/json",
      body: JSON.stringify({ error: { code: "no_model", message: "no model is loaded yet" } }),
    }));
    await page.getByLabel("Tweet text").fill("anyone there?");
    await page.getByRole("button", { name: "Score", exact: true }).click();
    const alert = page.locator("#single-error");
    await alert.waitFor({ state: "visible" });
    assert.match(await alert.innerText(), /The service is not ready: no model is loaded yet\. Try again in a minute\./);
    assert.equal(await page.locator("#feedback").isVisible(), false, "no feedback for an answer that never came");
    await page.unroute("**/api/predict");
    await page.route("**/api/predict", (route) => route.abort("connectionrefused"));
    await page.getByRole("button", { name: "Score", exact: true }).click();
    await page.getByText(/Could not reach the API/).waitFor();
    await page.unroute("**/api/predict");
  });

  test("text has at least WCAG AA contrast (4.5:1) against its background", async () => {
    const { checked, failures } = await page.evaluate(() => {
      const parse = (color) => {
        const m = color.match(/rgba?\(([^)]+)\)/);
        if (!m) return null;
        const [r, g, b, a = 1] = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
        return { r, g, b, a };
      };
      const luminance = ({ r, g, b }) => {
        const channel = (c) => { const v = c / 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
        return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
      };
      const background = (node) => {
        for (let el = node; el; el = el.parentElement) {
          const bg = parse(getComputedStyle(el).backgroundColor);
          if (bg && bg.a > 0) return bg;
        }
        return { r: 255, g: 255, b: 255, a: 1 };
      };
      const problems = [];
      let count = 0;
      for (const el of document.querySelectorAll("body *")) {
        const ownText = [...el.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
        if (!ownText || el.closest("script, style") || !el.checkVisibility()) continue;
        const fg = parse(getComputedStyle(el).color);
        const [l1, l2] = [luminance(fg), luminance(background(el))].sort((a, b) => b - a);
        const ratio = (l1 + 0.05) / (l2 + 0.05);
        count += 1;
        if (ratio < 4.5) problems.push(`${el.tagName}#${el.id}.${el.className} "${el.textContent.trim().slice(0, 30)}": ${ratio.toFixed(2)}`);
      }
      return { checked: count, failures: problems };
    });
    assert.ok(checked > 40, `only ${checked} text elements were checked`);
    assert.deepEqual(failures, []);
  });

  test("every control has a label and the results are announced", async () => {
    const unlabelled = await page.evaluate(() => [...document.querySelectorAll("textarea, input, button")]
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label") && !el.textContent.trim())
      .map((el) => el.id));
    assert.deepEqual(unlabelled, []);
    for (const id of ["single-result", "batch-result", "report-body", "feedback-status"]) {
      assert.equal(await page.locator(`#${id}`).getAttribute("aria-live"), "polite", id);
    }
    for (const id of ["single-error", "batch-error", "report-error", "feedback-error"]) {
      assert.equal(await page.locator(`#${id}`).getAttribute("role"), "alert", id);
    }
  });

  test("saves a screenshot", async () => {
    // Put the page back in a state worth looking at: a scored tweet and a scored batch.
    const box = page.getByLabel("Tweet text");
    await box.fill("I hate this airline, flight delayed again :(");
    await box.press("Control+Enter");
    await page.locator("#result-sentiment").waitFor();
    await page.getByLabel(/Tweets, one per line/).fill([
      "The crew was lovely, great flight :)",
      "lost my bag again, worst airline ever",
      "boarding now",
      "delayed three hours and nobody tells us anything :(",
    ].join("\n"));
    await page.getByRole("button", { name: "Score all" }).click();
    await page.locator("#batch-summary").waitFor();
    fs.mkdirSync(artifacts, { recursive: true });
    const file = path.join(artifacts, "page.png");
    await page.screenshot({ path: file, fullPage: true });
    assert.ok(fs.statSync(file).size > 10_000, "a real screenshot was written");
  });
});
