// Aion's Web UI: a static single-page app over @temporalio/ui's pages. Aion serves the output
// (aion/ui/assets) and answers every unknown path with index.html, so all rendering is client side.
import adapter from '@sveltejs/adapter-static';
import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

const out = process.env.AION_UI_OUT || '../aion/ui/assets';

export default {
  preprocess: vitePreprocess(),
  kit: {
    adapter: adapter({ pages: out, assets: out, fallback: 'index.html' }),
    prerender: { entries: [] },
  },
};
