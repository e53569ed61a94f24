import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vite';

export default defineConfig({
  plugins: [sveltekit()],
  build: { chunkSizeWarningLimit: 8192 },
  // `npm run dev`: the app with hot reload; its API calls go to a running Aion's Web UI port.
  server: { proxy: { '/api': process.env.AION_UI || 'http://127.0.0.1:8233' } },
});
