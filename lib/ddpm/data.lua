--[[
ddpm.data — image data sets as ddpm.Dataset (uint8 in memory; batches come
out as float tensors in [-1, 1], optionally padded and flipped).

   local d = ddpm.data.fashion_mnist{split = 'train'}   -- Debian's dataset-fashion-mnist
   local d = ddpm.data.cifar10{dir = '...', split = 'train'}
   local d = ddpm.data.png_dir('path/to/pngs', 3)
   local x = d:batch({1, 2, 3}, 32, {0, 1, 0})          -- [3, C, 32, 32], 2nd flipped
]]
local core = require 'ddpm.core'

local data = {}

data.FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist'
data.FASHION_MNIST_CLASSES = {'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
                              'Shirt', 'Sneaker', 'Bag', 'Ankle boot'}

--- data.fashion_mnist{split = 'train' | 'test', dir = ...}
function data.fashion_mnist(opt)
   opt = opt or {}
   local dir = opt.dir or os.getenv('DDPMLUA_FASHION_MNIST') or data.FASHION_MNIST_DIR
   local split = opt.split or 'train'
   local prefix = split == 'train' and 'train' or split == 'test' and 't10k'
   if not prefix then error("fashion_mnist: split must be 'train' or 'test', got " .. tostring(split), 2) end
   local images = ('%s/%s-images-idx3-ubyte.gz'):format(dir, prefix)
   local labels = ('%s/%s-labels-idx1-ubyte.gz'):format(dir, prefix)
   local f = io.open(images, 'rb')
   if not f then
      error(('fashion_mnist: %s not found; install it with `apt-get install dataset-fashion-mnist` ' ..
             '(make demo and make test do) or set DDPMLUA_FASHION_MNIST to a folder with the IDX files')
            :format(images), 2)
   end
   f:close()
   return core.dataset_idx(images, labels)
end

--- data.cifar10{dir = ..., split = 'train' | 'test'}; dir defaults to $DDPMLUA_CIFAR10.
function data.cifar10(opt)
   opt = opt or {}
   return core.dataset_cifar(opt.dir, opt.split or 'train')
end

--- data.png_dir(dir, channels): every PNG in a folder (same size), as 1 or 3 channels.
function data.png_dir(dir, channels)
   return core.dataset_png_dir(dir, channels or 3)
end

return data
