// Sends the same small journey of calls through an official tracking SDK to a Tern server.
//
//   node send-events.cjs <segment|rudderstack> <base url> <write key> <user id>
//
// The SDKs are loaded from $TERN_TEST_NODE_MODULES (installed by `cargo xtask test`). Exits non-zero when the
// SDK reports a delivery error, so the calling test fails with the SDK's own message.
'use strict';

const path = require('node:path');
const { createRequire } = require('node:module');

const [sdk, baseUrl, writeKey, userId] = process.argv.slice(2);
const modules = process.env.TERN_TEST_NODE_MODULES;
if (!sdk || !baseUrl || !writeKey || !userId || !modules) {
  console.error('usage: TERN_TEST_NODE_MODULES=… node send-events.cjs <segment|rudderstack> <base url> <write key> <user id>');
  process.exit(2);
}
const load = createRequire(path.join(modules, 'package.json'));

function calls(client, anonymousId) {
  client.track({ anonymousId, event: 'Pricing Viewed', properties: { plan: 'pro' } });
  client.identify({ userId, anonymousId, traits: { email: `${userId}@example.com`, plan: 'pro' } });
  client.track({ userId, event: 'Order Completed', properties: { orderId: 'o-1', total: 42.5 } });
  client.page({ userId, name: 'Pricing', properties: { path: '/pricing' } });
  client.group({ userId, groupId: `${userId}-company`, traits: { name: 'Acme', employees: 12 } });
}

async function viaSegment() {
  const { Analytics } = load('@segment/analytics-node');
  const client = new Analytics({ writeKey, host: baseUrl, maxRetries: 1, flushAt: 2 });
  client.on('error', (error) => {
    console.error('segment SDK error:', error && (error.reason || error.message || error));
    process.exitCode = 1;
  });
  calls(client, `${userId}-anon`);
  client.screen({ userId, name: 'Home' });
  client.alias({ userId, previousId: `${userId}-old` });
  await client.closeAndFlush({ timeout: 10000 });
}

async function viaRudderstack() {
  const Analytics = load('@rudderstack/rudder-sdk-node');
  const client = new Analytics(writeKey, {
    dataPlaneUrl: baseUrl,
    flushAt: 2,
    retryCount: 0,
    errorHandler: (error) => {
      console.error('rudderstack SDK error:', error && (error.message || error));
      process.exitCode = 1;
    },
  });
  calls(client, `${userId}-anon`);
  client.screen({ userId, name: 'Home' });
  client.alias({ userId, previousId: `${userId}-old` });
  await client.flush();
}

const run = { segment: viaSegment, rudderstack: viaRudderstack }[sdk];
if (!run) {
  console.error(`unknown SDK ${sdk}: expected segment or rudderstack`);
  process.exit(2);
}
run().catch((error) => {
  console.error(`${sdk} SDK failed:`, error);
  process.exit(1);
});
