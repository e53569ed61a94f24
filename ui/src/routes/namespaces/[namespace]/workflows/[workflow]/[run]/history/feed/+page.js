export { toHistory as load } from '$lib/redirect.js';
